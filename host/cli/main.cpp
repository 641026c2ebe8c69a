// The hspec command line: registers the subcommands, runs the one given, and maps errors to
// exit codes (0 ok, 1 other failure, 2 usage, 3 input, 4 not converged) with one-line
// messages on stderr.
#include <fstream>
#include <iostream>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "commands.hpp"
#include "hspec/backends/cpu/blas_runtime.hpp"
#include "hspec/distributed/communicator.hpp"
#include "hspec/error.hpp"

namespace hspec::cli {

void write_output(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::cout << text << std::flush;
    return;
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot open '" + path + "' for writing");
  f << text;
  if (!f.flush()) throw Error("cannot write '" + path + "'");
}

}  // namespace hspec::cli

namespace {

// One line: newlines in a message (e.g. from a library) must not break the contract.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// On several ranks every rank fails with the same error (include/hspec/distributed/
// agreement.hpp) and the same code; rank 0 alone says it.
int fail(int code, const std::string& msg) {
  if (hspec::is_output_rank()) std::cerr << "hspec: " << one_line(msg) << "\n";
  return code;
}

// MPI_Finalize on every way out of main, exceptions included.
struct DistributedSession {
  DistributedSession(int* argc, char*** argv) { hspec::init_distributed(argc, argv); }
  ~DistributedSession() { hspec::finalize_distributed(); }
};

// On several ranks, the last collective: every rank leaves with the highest exit code of
// any rank (e.g. rank 0 alone failing to write the report), and only after rank 0 has
// printed its message: a launcher that kills the job at the first non-zero exit (mpiexec,
// srun --kill-on-bad-exit) cannot cut rank 0 short.
int agreed_exit(int code) {
  hspec::Communicator* comm = hspec::world();
  if (comm == nullptr) return code;
  std::cerr << std::flush;
  int64_t c = code;
  try {
    comm->allreduce_max(&c, 1);
  } catch (const std::exception&) {
    return code;
  }
  return static_cast<int>(c);
}

int run_command(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
  // Before anything else: may re-execute this program with OpenBLAS's kernels corrected.
  hspec::cpu::correct_openblas_core(argv);
  // Then joins an MPI job when a launcher started this process (nothing otherwise).
  std::unique_ptr<DistributedSession> session;
  try {
    session = std::make_unique<DistributedSession>(&argc, &argv);
  } catch (const hspec::UsageError& e) {
    return fail(2, e.what());
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
  return agreed_exit(run_command(argc, argv));
}

namespace {

int run_command(int argc, char** argv) {
  CLI::App app{"hspec: Hessian spectrum of a trained model's loss, from the command line"};
  app.set_version_flag("--version", [] {
    return std::string("hspec ") + HSPEC_VERSION + "\nCPU kernels: " + hspec::cpu::kernel_summary();
  });
  app.require_subcommand(1);
  const std::vector<hspec::cli::Command> commands = hspec::cli::add_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(2, std::string(e.what()) + " (see hspec --help)");
  } catch (const hspec::UsageError& e) {  // an option's value, parsed into its typed form
    return fail(2, std::string(e.what()) + " (see hspec --help)");
  }

  try {
    for (const auto& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const hspec::UsageError& e) {
    return fail(2, e.what());
  } catch (const hspec::InputError& e) {
    return fail(3, e.what());
  } catch (const std::bad_alloc&) {
    return fail(1, "out of memory");
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
  return 1;
}

}  // namespace
