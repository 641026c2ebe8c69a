// The CLI's progress display: a ProgressSink that shows on stderr what a long run is doing.
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "hspec/analysis/progress.hpp"

namespace hspec::cli {

// Shows nothing until the run has taken `delay` seconds (default 1). Then, on a terminal,
// one line rewritten in place (\r) a few times a second and cleared at the end; otherwise
// (a batch log) a plain line at each phase change and every `interval` seconds (default 10).
// A ticker thread keeps the elapsed time moving during long single steps (the primal pass,
// a slow product). The environment variables HSPEC_PROGRESS_DELAY and
// HSPEC_PROGRESS_INTERVAL (seconds) override the two times: a hook for tests and for logs
// that want more or fewer lines. Only stderr is written, never stdout.
class ProgressLine final : public ProgressSink {
 public:
  ProgressLine();
  ~ProgressLine() override;  // finish()
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  void report(const Progress& p) override;
  // A prefix naming the unit of work, e.g. "checkpoint 2/5 a.safetensors"; shown from the
  // next report on.
  void set_context(const std::string& context);
  // Stops the ticker and clears the live line (before results are printed); idempotent.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  double elapsed(Clock::time_point now) const;
  std::string text(Clock::time_point now) const;
  void maybe_draw(Clock::time_point now, bool phase_changed);
  void tick();

  std::mutex mu_;
  std::condition_variable cv_;
  std::thread ticker_;
  bool stop_ = false;
  bool tty_ = false;
  double delay_ = 1.0, interval_ = 10.0;
  Clock::time_point start_, last_draw_;
  bool drawn_ = false;   // something was written (a live line may need clearing)
  std::string phase_;    // copy of the last report's phase
  std::string context_;  // set_context
  std::string printed_;  // phase and context of the last plain line
  Progress last_;        // the last report (its phase pointer is not used)
};

}  // namespace hspec::cli
