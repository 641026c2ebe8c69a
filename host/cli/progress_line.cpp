// ProgressLine: formats the solvers' progress reports and writes them to stderr, live on a
// terminal, as occasional plain lines otherwise.
#include "progress_line.hpp"

#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

namespace hspec::cli {
namespace {

double env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v, &end);
  return end && *end == '\0' && x >= 0 && x < 1e9 ? x : fallback;
}

// Columns of the terminal on stderr; a live line longer than that would wrap, and \r then
// rewrites only its last row.
size_t terminal_width() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10) return ws.ws_col;
  return 80;
}

void write_all(const std::string& s) {
  std::fputs(s.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace

ProgressLine::ProgressLine()
    : tty_(isatty(STDERR_FILENO) == 1),
      delay_(env_seconds("HSPEC_PROGRESS_DELAY", 1.0)),
      interval_(env_seconds("HSPEC_PROGRESS_INTERVAL", 10.0)),
      start_(Clock::now()),
      last_draw_(start_) {
  ticker_ = std::thread([this] { tick(); });
}

ProgressLine::~ProgressLine() {
  finish();
}

double ProgressLine::elapsed(Clock::time_point now) const {
  return std::chrono::duration<double>(now - start_).count();
}

std::string ProgressLine::text(Clock::time_point now) const {
  // Elapsed time first: a terminal narrower than the line cuts its end.
  char buf[256];
  std::snprintf(buf, sizeof buf, "%.1f s ", elapsed(now));
  std::string s = buf;
  if (!context_.empty()) s += "[" + context_ + "] ";
  s += phase_;
  if (last_.products > 0 || last_.budget > 0) {
    if (last_.budget > 0)
      std::snprintf(buf, sizeof buf, ": %lld/%lld products", static_cast<long long>(last_.products),
                    static_cast<long long>(last_.budget));
    else
      std::snprintf(buf, sizeof buf, ": %lld products", static_cast<long long>(last_.products));
    s += buf;
  }
  if (last_.has_ritz) {
    std::snprintf(buf, sizeof buf, ", Ritz [%.6g, %.6g], %lld/%lld converged", last_.lowest,
                  last_.highest, static_cast<long long>(last_.converged),
                  static_cast<long long>(last_.wanted));
    s += buf;
  }
  if (last_.has_estimate) {
    std::snprintf(buf, sizeof buf, ", trace %.6g +- %.2g", last_.estimate, last_.std_error);
    s += buf;
  }
  return s;
}

// Called with mu_ held.
void ProgressLine::maybe_draw(Clock::time_point now, bool phase_changed) {
  if (stop_ || phase_.empty() || elapsed(now) < delay_) return;
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (tty_) {
    if (!phase_changed && drawn_ && since < 0.1) return;  // at most ten redraws a second
    std::string line = text(now);
    const size_t width = terminal_width() - 1;
    if (line.size() > width) line.resize(width);
    write_all("\r" + line + "\033[K");
  } else {
    const std::string key = context_ + "\n" + phase_;
    if (key == printed_ && since < interval_) return;
    printed_ = key;
    write_all("hspec: " + text(now) + "\n");
  }
  drawn_ = true;
  last_draw_ = now;
}

void ProgressLine::report(const Progress& p) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool changed = phase_ != p.phase;
  last_ = p;
  phase_ = p.phase;
  maybe_draw(Clock::now(), changed);
}

void ProgressLine::set_context(const std::string& context) {
  std::lock_guard<std::mutex> lock(mu_);
  context_ = context;
  phase_.clear();  // nothing to show for the new unit until it reports
  last_ = Progress();
}

void ProgressLine::tick() {
  // The stop signals must reach the main thread's handler, not this one.
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, nullptr);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(250));
    if (!stop_) maybe_draw(Clock::now(), false);
  }
}

void ProgressLine::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
    if (tty_ && drawn_) write_all("\r\033[K");
  }
  cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

}  // namespace hspec::cli
