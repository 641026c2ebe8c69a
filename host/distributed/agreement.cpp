// RankAgreement: one small collective per checkpoint; see include/hspec/distributed/agreement.hpp.
#include "hspec/distributed/agreement.hpp"

#include <new>
#include <string>
#include <vector>

#include "hspec/error.hpp"

namespace hspec {
namespace {

// Error kinds carried between ranks; 0 is "no failure".
enum Kind : int { kNone = 0, kError, kUsage, kInput, kNumerical, kDevice, kOutOfMemory };

int kind_of(std::exception_ptr e, std::string& message) {
  try {
    std::rethrow_exception(e);
  } catch (const UsageError& x) {
    message = x.what();
    return kUsage;
  } catch (const InputError& x) {
    message = x.what();
    return kInput;
  } catch (const NumericalError& x) {
    message = x.what();
    return kNumerical;
  } catch (const DeviceError& x) {
    message = x.what();
    return kDevice;
  } catch (const std::bad_alloc&) {
    message = "out of memory";
    return kOutOfMemory;
  } catch (const std::exception& x) {
    message = x.what();
    return kError;
  } catch (...) {
    message = "unknown error";
    return kError;
  }
}

[[noreturn]] void throw_kind(int kind, const std::string& message) {
  switch (kind) {
    case kUsage:
      throw UsageError(message);
    case kInput:
      throw InputError(message);
    case kNumerical:
      throw NumericalError(message);
    case kDevice:
      throw DeviceError(message);
    case kOutOfMemory:
      throw std::bad_alloc();
    default:
      throw Error(message);
  }
}

}  // namespace

void RankAgreement::checkpoint() {
  agree(kNone, std::string());
}

void RankAgreement::fail(std::exception_ptr error) {
  std::string message;
  const int kind = kind_of(error, message);
  agree(kind, message);
  throw Error("internal: a failure was not agreed");  // agree() throws when kind != kNone
}

void RankAgreement::agree(int kind, const std::string& message) {
  const int rank = comm_.rank(), size = comm_.size();
  const bool stop = local_cancel_ != nullptr && local_cancel_->load();
  // [any failed, any stop signal, lowest failing rank as size - rank]
  int64_t v[3] = {kind != kNone, stop, kind != kNone ? size - rank : 0};
  comm_.allreduce_max(v, 3);
  if (v[1] != 0) cancel_.store(true);
  if (v[0] == 0) return;
  const int root = size - static_cast<int>(v[2]);
  int64_t head[2] = {kind, static_cast<int64_t>(message.size())};
  comm_.broadcast(head, sizeof head, root);
  std::string text(static_cast<size_t>(head[1]), '\0');
  if (rank == root) text = message;
  if (!text.empty()) comm_.broadcast(text.data(), static_cast<int64_t>(text.size()), root);
  failed_ = true;
  throw_kind(static_cast<int>(head[0]),
             "rank " + std::to_string(root) + " of " + std::to_string(size) + ": " + text);
}

}  // namespace hspec
