// decide_verdict: saddle first (a significant negative direction), then sharp or flat by the
// gradient-descent stability ratio lambda_max * eta / 2 at the given or reference step.
#include "hspec/report/verdict.hpp"

#include <cmath>
#include <cstdio>

namespace hspec {
namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

Verdict decide_verdict(const VerdictInput& in, const VerdictRule& rule) {
  Verdict v;
  v.have_trace = in.have_trace;
  v.trace = in.trace;
  v.have_density = in.have_density;
  v.negative_fraction = in.negative_fraction;
  v.lr_given = in.lr > 0;
  v.lr = v.lr_given ? in.lr : rule.reference_lr;
  if (!in.have_extremes) {
    v.rule = "needs both ends of the spectrum (--top >= 1 and --bottom >= 1)";
    return v;
  }
  v.lambda_max = in.lambda_max;
  v.lambda_min = in.lambda_min;
  v.stability = in.lambda_max * v.lr / 2;
  if (!(in.lambda_max > 0)) {
    // No positive curvature at all: a maximum or a degenerate point, never a minimum.
    v.label = "saddle";
    v.rule = "lambda_max = " + num(in.lambda_max) + " <= 0: no direction curves upward";
    return v;
  }
  v.ratio = std::fabs(std::min(in.lambda_min, 0.0)) / in.lambda_max;
  if (in.lambda_min < -rule.saddle_ratio * in.lambda_max) {
    v.label = "saddle";
    v.rule = "lambda_min < -" + num(rule.saddle_ratio) +
             " * lambda_max (|lambda_min|/lambda_max = " + num(v.ratio) + ")";
    if (in.have_density)
      v.rule += "; " + num(100 * in.negative_fraction) + "% of the spectrum is negative";
    return v;
  }
  const std::string lr = (v.lr_given ? "--lr " : "reference lr ") + num(v.lr);
  if (v.stability > 1) {
    v.label = "sharp minimum";
    v.rule = "lambda_max * eta / 2 = " + num(v.stability) + " > 1 at " + lr +
             ": gradient descent diverges along the top eigenvector";
  } else {
    v.label = "flat minimum";
    v.rule = "|lambda_min|/lambda_max = " + num(v.ratio) + " <= " + num(rule.saddle_ratio) +
             " and lambda_max * eta / 2 = " + num(v.stability) + " <= 1 at " + lr;
  }
  return v;
}

}  // namespace hspec
