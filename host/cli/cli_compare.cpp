// `hspec compare`: several checkpoints analyzed with the same data, options and seeds, a
// table sorted by sharpness (lambda_max) and one JSON object per checkpoint and line.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "hspec/analysis/analyze.hpp"
#include "hspec/distributed/communicator.hpp"
#include "hspec/error.hpp"
#include "progress_line.hpp"

namespace hspec::cli {
namespace {

struct Row {
  std::string checkpoint;
  int code = 0;       // the exit code `hspec analyze` would have given this checkpoint
  std::string error;  // empty when the analysis ran
  AnalyzeReport report;
  bool has_lambda_max() const { return error.empty() && !report.top.empty(); }
  double lambda_max() const { return report.top.front().value; }
};

// Severity for the overall exit code: a failure outranks a result that did not converge,
// and among failures the one least likely to be the user's choice of file ranks highest.
int severity(int code) {
  switch (code) {
    case 0:
      return 0;
    case 4:
      return 1;  // not converged: the report exists
    case 3:
      return 2;  // input error: this file
    case 2:
      return 3;  // usage error: e.g. --max-memory too small for this model
    default:
      return 4;  // anything else
  }
}

Row analyze_one(const AnalyzeOptions& base, const std::string& path) {
  Row row;
  row.checkpoint = path;
  AnalyzeOptions opt = base;
  // With --graph, every checkpoint is a state_dict for that one exported graph.
  if (base.model_path.empty()) {
    opt.model_path = path;
  } else {
    opt.params_path = path;
  }
  try {
    row.report = run_analyze(opt);
    row.code = row.report.converged ? 0 : 4;
  } catch (const UsageError& e) {
    row.code = 2;
    row.error = e.what();
  } catch (const InputError& e) {
    row.code = 3;
    row.error = e.what();
  } catch (const std::bad_alloc&) {
    row.code = 1;
    row.error = "out of memory";
  } catch (const std::exception& e) {
    row.code = 1;
    row.error = e.what();
  }
  for (char& c : row.error)
    if (c == '\n' || c == '\r') c = ' ';
  return row;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string table(const std::vector<Row>& rows) {
  std::ostringstream s;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-4s %13s %13s %9s %13s %7s  %-14s %s\n", "rank", "lambda_max",
                "lambda_min", "|min/max|", "trace", "neg%", "verdict", "checkpoint");
  s << buf;
  int rank = 0;
  for (const Row& r : rows) {
    if (!r.error.empty()) {
      std::snprintf(buf, sizeof buf, "%-4s %13s %13s %9s %13s %7s  %-14s ", "-", "-", "-", "-", "-",
                    "-", "FAILED");
      s << buf << r.checkpoint << "\n     error (exit " << r.code << "): " << r.error << "\n";
      continue;
    }
    const AnalyzeReport& a = r.report;
    const Verdict& v = a.verdict;
    const std::string lmax = a.top.empty() ? "-" : fmt("%+.6e", a.top.front().value);
    const std::string lmin = a.bottom.empty() ? "-" : fmt("%+.6e", a.bottom.front().value);
    const std::string ratio = v.label.empty() ? "-" : fmt("%.3g", v.ratio);
    const std::string tr = a.exact                ? fmt("%+.6e", a.trace)
                           : a.has_trace_estimate ? fmt("%+.6e", a.trace_estimate.estimate)
                                                  : "-";
    const std::string neg = a.has_density ? fmt("%.1f", 100 * v.negative_fraction) : "-";
    std::snprintf(buf, sizeof buf, "%-4d %13s %13s %9s %13s %7s  %-14s ", ++rank, lmax.c_str(),
                  lmin.c_str(), ratio.c_str(), tr.c_str(), neg.c_str(),
                  v.label.empty() ? "-" : v.label.c_str());
    s << buf << r.checkpoint << (r.code == 4 ? "  (NOT CONVERGED)" : "") << "\n";
  }
  return s.str();
}

}  // namespace

Command add_compare(CLI::App& app) {
  struct State : AnalyzeCli {
    std::vector<std::string> checkpoints;
    std::string jsonl;
    std::string graph;  // --graph M.onnx: the checkpoints are state_dicts for it
  };
  auto st = std::make_shared<State>();
  CLI::App* a = app.add_subcommand(
      "compare",
      "analyze several checkpoints with the same data, options and seeds; table by sharpness");
  a->add_option("checkpoints", st->checkpoints, "checkpoints (.safetensors)")->required();
  a->add_option("--graph", st->graph,
                "an ONNX graph (.onnx); each checkpoint is then a state_dict for it (--params)");
  add_analyze_options(a, *st);  // the same options as `analyze`
  a->add_option("--jsonl", st->jsonl,
                "write one JSON object per checkpoint and line to PATH ('-' = stdout only)");
  auto check = [st]() {
    // The per-checkpoint path is set in the loop; any one stands in for the option checks.
    st->o.model_path = st->checkpoints.empty() ? std::string() : st->checkpoints.front();
    if (st->checkpoints.empty()) throw UsageError("compare: give at least one checkpoint");
    finish_analyze_options(*st);
    st->o.model_path = st->graph;  // "" = each checkpoint is a model
  };
  auto run = [st, check]() {
    check();
    std::vector<Row> rows;
    std::unique_ptr<ProgressLine> progress;
    if (!st->quiet && is_output_rank()) progress = std::make_unique<ProgressLine>();
    st->o.progress = progress.get();
    for (size_t i = 0; i < st->checkpoints.size(); ++i) {
      const std::string& path = st->checkpoints[i];
      if (progress)
        progress->set_context("checkpoint " + std::to_string(i + 1) + "/" +
                              std::to_string(st->checkpoints.size()) + " " + path);
      rows.push_back(analyze_one(st->o, path));
    }
    st->o.progress = nullptr;
    if (progress) progress->finish();
    // Sharpest first; failures (no lambda_max) last, in the order given. stable_sort keeps
    // ties in command-line order.
    std::stable_sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
      if (x.has_lambda_max() != y.has_lambda_max()) return x.has_lambda_max();
      return x.has_lambda_max() && x.lambda_max() > y.lambda_max();
    });
    // On several ranks every rank holds the same rows; rank 0 writes them.
    if (st->jsonl != "-" && is_output_rank()) std::cout << table(rows) << std::flush;
    if (!st->jsonl.empty() && is_output_rank()) {
      std::string lines;
      int rank = 0;
      for (const Row& r : rows) {
        nlohmann::json j;
        if (r.error.empty()) {
          j = nlohmann::json::parse(report_json(r.report));
          j["rank"] = ++rank;
        } else {
          j["error"] = r.error;
        }
        j["checkpoint"] = r.checkpoint;
        j["exit_code"] = r.code;
        lines += j.dump() + "\n";
      }
      write_output(st->jsonl, lines);
    }
    int worst = 0;
    for (const Row& r : rows)
      if (severity(r.code) > severity(worst)) worst = r.code;
    return worst;
  };
  return {a, run, check};
}

}  // namespace hspec::cli
