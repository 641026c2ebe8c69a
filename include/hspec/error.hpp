// Typed errors. Library code throws these; only the CLI turns them into exit codes.
#pragma once
#include <stdexcept>
#include <string>

namespace hspec {

// Base of every error hspec throws on purpose. Exit code 1 unless a subclass says otherwise.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad command line (unknown option, inconsistent flags). CLI exit code 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// A file we were given cannot be used: unreadable, malformed, wrong shapes, NaN/Inf,
// labels out of range. The message names the file and the problem. CLI exit code 3.
class InputError : public Error {
 public:
  using Error::Error;
};

// A numerical failure during a run (NaN appearing, LAPACK failure). CLI exit code 1.
class NumericalError : public Error {
 public:
  using Error::Error;
};

// A CUDA, cuBLAS, cuSOLVER or cuRAND call failed; the message holds the call and file:line.
class DeviceError : public Error {
 public:
  using Error::Error;
};

}  // namespace hspec
