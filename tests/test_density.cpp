// Stochastic Lanczos quadrature against dense spectra (Wasserstein-1 distance computed here
// and by the library), the broadened curve, and the SVG plot's well-formedness.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "hspec/backends/cpu/cpu_space.hpp"
#include "hspec/dense_operator.hpp"
#include "hspec/error.hpp"
#include "hspec/mlp/reference_operator.hpp"
#include "hspec/mlp/workloads.hpp"
#include "hspec/random.hpp"
#include "hspec/report/svg.hpp"
#include "hspec/solvers/density.hpp"
#include "hspec/solvers/exact.hpp"

namespace hspec {
namespace {

// Independent W1 for the tests: the quantile-function form, integral over t in (0, 1) of
// |F_a^-1(t) - F_b^-1(t)|, on a fine merge of both measures' cumulative weights.
double w1_quantiles(std::vector<std::pair<double, double>> a,
                    std::vector<std::pair<double, double>> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  size_t i = 0, j = 0;
  double ca = a[0].second, cb = b[0].second, t = 0, w = 0;
  while (i < a.size() && j < b.size()) {
    const double next = std::min(ca, cb);
    w += (next - t) * std::fabs(a[i].first - b[j].first);
    t = next;
    if (ca <= next + 1e-15 && ++i < a.size()) ca += a[i].second;
    if (cb <= next + 1e-15 && ++j < b.size()) cb += b[j].second;
  }
  return w;
}

std::vector<std::pair<double, double>> pairs(const std::vector<double>& n,
                                             const std::vector<double>& w) {
  std::vector<std::pair<double, double>> p;
  for (size_t i = 0; i < n.size(); ++i) p.emplace_back(n[i], w[i]);
  return p;
}

std::vector<std::pair<double, double>> uniform(const std::vector<double>& ev) {
  return pairs(ev, std::vector<double>(ev.size(), 1.0 / ev.size()));
}

TEST(DensityW1, ClosedFormsAndAgreementWithQuantileForm) {
  EXPECT_DOUBLE_EQ(wasserstein1({0}, {1}, {1}, {1}), 1.0);
  EXPECT_DOUBLE_EQ(wasserstein1({0, 1}, {1, 1}, {0.5}, {1}), 0.5);
  EXPECT_NEAR(wasserstein1({0, 2}, {0.25, 0.75}, {0, 2}, {0.75, 0.25}), 1.0, 1e-15);
  std::vector<double> na, wa, nb, wb;
  for (int i = 0; i < 50; ++i) {
    na.push_back(rng::gaussian(1, 1, i));
    wa.push_back(rng::uniform(1, 2, i));
    nb.push_back(0.3 + rng::gaussian(1, 3, i));
    wb.push_back(rng::uniform(1, 4, i));
  }
  const double sa = std::accumulate(wa.begin(), wa.end(), 0.0);
  const double sb = std::accumulate(wb.begin(), wb.end(), 0.0);
  for (double& w : wa) w /= sa;
  for (double& w : wb) w /= sb;
  EXPECT_NEAR(wasserstein1(na, wa, nb, wb), w1_quantiles(pairs(na, wa), pairs(nb, wb)), 1e-12);
}

// A Hessian-like spectrum: outliers, a bulk near zero with a negative part.
std::vector<double> spectrum(int64_t n) {
  std::vector<double> d(n);
  for (int64_t i = 0; i < n; ++i)
    d[i] = i < 6 ? 10.0 - 1.3 * i : 0.2 * std::pow(rng::uniform(5, 1, i), 3) - 0.02;
  return d;
}

TEST(DensitySlq, WeightsSumToOneAndMatchTheDiagonalSpectrumInW1) {
  const std::vector<double> d = spectrum(3000);
  DiagonalOperator<double> op(d, 5);  // 8 probes per step go through in two products
  CpuSpace<double> space;
  DensityOptions o;
  o.seed = 3;
  const Density r = slq_density<double>(op, space, o);
  EXPECT_EQ(r.probes, 8);
  EXPECT_EQ(r.steps, 80);
  EXPECT_EQ(r.products, 8 * 80);
  EXPECT_EQ(r.nodes.size(), 640u);
  EXPECT_NEAR(std::accumulate(r.weights.begin(), r.weights.end(), 0.0), 1.0, 1e-12);
  EXPECT_TRUE(std::is_sorted(r.nodes.begin(), r.nodes.end()));
  const double lo = *std::min_element(d.begin(), d.end());
  const double hi = *std::max_element(d.begin(), d.end());
  EXPECT_GE(r.nodes.front(), lo - 1e-9);
  EXPECT_LE(r.nodes.back(), hi + 1e-9);
  EXPECT_NEAR(r.nodes.back(), hi, 1e-9);  // Lanczos finds the isolated top exactly
  const double w1 = wasserstein1(r.nodes, r.weights, d, std::vector<double>(d.size(), 1.0));
  EXPECT_NEAR(w1, w1_quantiles(pairs(r.nodes, r.weights), uniform(d)), 1e-9);
  EXPECT_LT(w1, 0.002 * (hi - lo)) << "W1 " << w1;
  // The broadened curve integrates to about 1 (the grid extends 5 sigma past both ends).
  double area = 0;
  for (size_t i = 1; i < r.grid.size(); ++i)
    area += 0.5 * (r.values[i] + r.values[i - 1]) * (r.grid[i] - r.grid[i - 1]);
  EXPECT_NEAR(area, 1.0, 1e-3);
  EXPECT_NEAR(r.sigma, 0.01 * (r.nodes.back() - r.nodes.front()), 1e-12);
  // On a diagonal every Rademacher probe's measure is the spectrum itself, so the
  // Chebyshev-Markov-Stieltjes bracket must hold exactly.
  const double neg = std::count_if(d.begin(), d.end(), [](double x) { return x < 0; }) /
                     static_cast<double>(d.size());
  EXPECT_LE(r.negative_lo, neg);
  EXPECT_GE(r.negative_hi, neg);
  // Bulk 0.2 u^3 - 0.02 is negative for u < 0.1^(1/3).
  EXPECT_NEAR(negative_mass(r), std::cbrt(0.1), 0.08);
}

TEST(DensitySlq, MlpHessianMatchesExactSpectrumInW1) {
  const Model teacher = random_mlp({8, 10, 4}, Activation::Tanh, 31);
  const Dataset ds = teacher_dataset(teacher, 128, 32);
  const Model m = random_mlp({8, 10, 4}, Activation::Tanh, 33);
  MlpReferenceOptions co;
  co.loss = Loss::CE;
  co.max_block = 16;
  MlpReferenceOperator<double> eop(m, ds, co), op(m, ds, co);
  CpuSpace<double> space;
  const ExactResult ex = exact_spectrum<double>(eop, space, 1, 1, 1e-8, 1ull << 30);
  DensityOptions o;
  o.probes = 8;
  o.steps = 40;
  const Density r = slq_density<double>(op, space, o);
  EXPECT_NEAR(std::accumulate(r.weights.begin(), r.weights.end(), 0.0), 1.0, 1e-12);
  const double range = ex.eigenvalues.back() - ex.eigenvalues.front();
  const double w1 = wasserstein1(r.nodes, r.weights, ex.eigenvalues,
                                 std::vector<double>(ex.eigenvalues.size(), 1.0));
  EXPECT_LT(w1, 0.01 * range) << "W1 " << w1 << " range " << range;
}

TEST(DensitySlq, BreakdownOnFewDistinctValuesGivesThemExactly) {
  // Three distinct eigenvalues: each recurrence finds an invariant space after 3 steps.
  std::vector<double> d(90);
  for (int i = 0; i < 90; ++i) d[i] = i % 3 == 0 ? -1.0 : i % 3 == 1 ? 2.0 : 5.0;
  DiagonalOperator<double> op(d);
  CpuSpace<double> space;
  DensityOptions o;
  o.probes = 4;
  o.steps = 30;
  const Density r = slq_density<double>(op, space, o);
  EXPECT_EQ(r.steps, 3);
  EXPECT_EQ(r.nodes.size(), 12u);
  for (double x : r.nodes)
    EXPECT_TRUE(std::fabs(x + 1) < 1e-9 || std::fabs(x - 2) < 1e-9 || std::fabs(x - 5) < 1e-9);
  EXPECT_LT(wasserstein1(r.nodes, r.weights, d, std::vector<double>(90, 1.0)), 0.5);
}

TEST(DensitySlq, Fp32AndOptionChecks) {
  const std::vector<double> d = spectrum(500);
  DiagonalOperator<float> op(d);
  CpuSpace<float> space;
  DensityOptions o;
  o.steps = 30;
  const Density r = slq_density<float>(op, space, o);
  EXPECT_NEAR(std::accumulate(r.weights.begin(), r.weights.end(), 0.0), 1.0, 1e-9);
  EXPECT_LT(wasserstein1(r.nodes, r.weights, d, std::vector<double>(d.size(), 1.0)), 0.02);
  o.probes = 0;
  EXPECT_THROW(slq_density<float>(op, space, o), UsageError);
  const Density ex = density_from_eigenvalues({3, 1, 2, -1});
  EXPECT_EQ(ex.nodes, (std::vector<double>{-1, 1, 2, 3}));
  EXPECT_DOUBLE_EQ(negative_mass(ex), 0.25);
}

// A minimal XML well-formedness check: one root, balanced and properly nested tags, quoted
// attributes, only the five predefined entities (or numeric ones) in text.
bool well_formed(const std::string& s, std::string* why) {
  std::vector<std::string> stack;
  size_t i = 0;
  int roots = 0;
  if (s.rfind("<?xml", 0) == 0) i = s.find("?>") + 2;
  while (i < s.size()) {
    if (s[i] == '<') {
      const size_t e = s.find('>', i);
      if (e == std::string::npos) return *why = "unterminated tag", false;
      std::string tag = s.substr(i + 1, e - i - 1);
      int quotes = 0;
      for (char c : tag) quotes += c == '"';
      if (quotes % 2) return *why = "odd quotes in <" + tag + ">", false;
      if (tag[0] == '/') {
        const std::string name = tag.substr(1);
        if (stack.empty() || stack.back() != name)
          return *why = "mismatched </" + name + ">", false;
        stack.pop_back();
      } else {
        const bool self = tag.back() == '/';
        const std::string name = tag.substr(0, tag.find_first_of(" /\n"));
        if (stack.empty() && ++roots > 1) return *why = "two roots", false;
        if (!self) stack.push_back(name);
      }
      i = e + 1;
    } else if (s[i] == '&') {
      const size_t e = s.find(';', i);
      const std::string ent = s.substr(i, e - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;" &&
          ent.rfind("&#", 0) != 0)
        return *why = "bad entity " + ent, false;
      i = e + 1;
    } else {
      if (stack.empty() && !std::isspace(static_cast<unsigned char>(s[i])))
        return *why = "text outside the root", false;
      ++i;
    }
  }
  if (!stack.empty()) return *why = "unclosed <" + stack.back() + ">", false;
  return roots == 1;
}

TEST(SvgPlot, WellFormedWithCurveAxesAndMarkers) {
  const std::vector<double> d = spectrum(800);
  DiagonalOperator<double> op(d);
  CpuSpace<double> space;
  const Density r = slq_density<double>(op, space, DensityOptions{});
  DensityPlot p;
  p.title = "a <test> & \"title\"";
  p.have_extremes = true;
  p.lambda_min = -0.02;
  p.lambda_max = 10;
  const std::string svg = density_svg(r, p);
  std::string why;
  EXPECT_TRUE(well_formed(svg, &why)) << why;
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("<path id=\"density\""), std::string::npos);
  EXPECT_NE(svg.find(">eigenvalue</text>"), std::string::npos);
  EXPECT_NE(svg.find(">density (log scale)</text>"), std::string::npos);
  EXPECT_NE(svg.find("<g id=\"lambda_min\""), std::string::npos);
  EXPECT_NE(svg.find("<g id=\"lambda_max\""), std::string::npos);
  EXPECT_NE(svg.find("a &lt;test&gt; &amp; &quot;title&quot;"), std::string::npos);
  // One path point per grid point.
  const size_t start = svg.find(" d=\"M", svg.find("<path id=\"density\""));
  const size_t end = svg.find('"', start + 4);
  EXPECT_EQ(std::count(svg.begin() + start, svg.begin() + end, 'L') + 1,
            static_cast<long>(r.grid.size()));
  EXPECT_FALSE(well_formed("<svg><g></svg></g>", &why));
  EXPECT_FALSE(well_formed("<svg a=\"1></svg>", &why));
  EXPECT_THROW(density_svg(Density{}, p), Error);
}

}  // namespace
}  // namespace hspec
