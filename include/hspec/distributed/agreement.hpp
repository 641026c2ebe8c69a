// How the ranks of a data-parallel run agree on failures and on stop signals, so that an
// error seen by one rank only ends every rank with the same exit code and one message, and
// SIGINT/SIGTERM stop every rank at the same step of the solver.
#pragma once
#include <atomic>
#include <exception>
#include <string>

#include "hspec/distributed/communicator.hpp"

namespace hspec {

// The protocol: every collective of the run is preceded by checkpoint() (the operator's
// constructor and each apply(), and the end of the run), and a rank that catches an
// exception anywhere calls fail() instead, exactly once. Both are the same collective, so
// whichever point the other ranks have reached, they meet: each learns that some rank
// failed, the lowest failing rank broadcasts its error (kind and message), and every rank
// throws that error, typed as on the failing rank (exit codes 1, 2, 3 alike everywhere).
// Nothing is aborted: every rank unwinds, finalizes MPI and exits on its own. MPI_Abort is
// not used; it would lose the message and the exit code. (A rank that dies without throwing,
// e.g. killed by the kernel, is beyond this protocol: the launcher then ends the job.)
//
// Stop signals: the handler sets only the rank's own flag, at any moment. The solver polls
// cancel_flag() instead, which changes only inside checkpoint(), to the OR over the ranks
// of their own flags: every rank sees it change at the same apply(), so all ranks stop at
// the same step and report the same partial results.
class RankAgreement {
 public:
  RankAgreement(Communicator& comm, const std::atomic<bool>* local_cancel)
      : comm_(comm), local_cancel_(local_cancel) {}

  // Collective. Throws the agreed error when some rank failed.
  void checkpoint();
  // Collective: this rank failed with `error` (the exception being handled). Tells the
  // others and throws the agreed error (the lowest failing rank's), never returns.
  [[noreturn]] void fail(std::exception_ptr error);
  // Whether the agreed error was thrown: the caller must then not call fail() again.
  bool failed() const { return failed_; }
  const std::atomic<bool>* cancel_flag() const { return &cancel_; }

 private:
  void agree(int kind, const std::string& message);

  Communicator& comm_;
  const std::atomic<bool>* local_cancel_;
  std::atomic<bool> cancel_{false};
  bool failed_ = false;
};

}  // namespace hspec
