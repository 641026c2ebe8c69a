// density_svg: the density curve on a log axis as a standalone SVG document, written by hand
// (a few elements; no plotting library).
#include "hspec/report/svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "hspec/error.hpp"

namespace hspec {
namespace {

constexpr double kWidth = 760, kHeight = 460;
constexpr double kLeft = 90, kRight = 30, kTop = 50, kBottom = 70;

std::string num(double v, const char* f = "%.2f") {
  char buf[48];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// About `want` round tick positions (1, 2 or 5 times a power of ten) covering [a, b].
std::vector<double> nice_ticks(double a, double b, int want) {
  std::vector<double> t;
  if (!(b > a)) return {a};
  const double raw = (b - a) / want, mag = std::pow(10, std::floor(std::log10(raw)));
  const double r = raw / mag, step = (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
  for (double x = std::ceil(a / step) * step; x <= b + 1e-9 * step; x += step)
    t.push_back(std::fabs(x) < 1e-12 * step ? 0.0 : x);
  return t;
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&apos;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

std::string density_svg(const Density& d, const DensityPlot& p) {
  if (d.grid.size() < 2 || d.grid.size() != d.values.size())
    throw Error("density plot: no broadened curve to draw");
  const double x0 = d.grid.front(), x1 = d.grid.back();
  const double vmax = *std::max_element(d.values.begin(), d.values.end());
  if (!(vmax > 0) || !(x1 > x0)) throw Error("density plot: empty density");
  // Log axis from whole decades: floor * max up to the decade above max.
  const double ytop = std::ceil(std::log10(vmax));
  const double ybot = std::floor(std::log10(vmax * p.floor));
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto sx = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * pw; };
  // Decade e sits at ly(e); the curve is clamped at the floor, which lies above ybot.
  auto ly = [&](double l) { return kTop + (ytop - l) / (ytop - ybot) * ph; };
  auto sy = [&](double v) { return ly(std::log10(std::max(v, vmax * p.floor))); };

  std::ostringstream s;
  s << "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << kWidth
    << "\" height=\"" << kHeight << "\" viewBox=\"0 0 " << kWidth << " " << kHeight
    << "\" font-family=\"sans-serif\" font-size=\"13\">\n"
    << "<rect x=\"0\" y=\"0\" width=\"" << kWidth << "\" height=\"" << kHeight
    << "\" fill=\"white\"/>\n"
    << "<text id=\"title\" x=\"" << kWidth / 2 << "\" y=\"28\" text-anchor=\"middle\" "
    << "font-size=\"15\">" << xml_escape(p.title) << "</text>\n";
  // Axes and ticks.
  s << "<g id=\"axes\" stroke=\"black\" fill=\"none\">\n"
    << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << pw << "\" height=\"" << ph
    << "\"/>\n</g>\n<g id=\"xticks\" text-anchor=\"middle\">\n";
  for (double x : nice_ticks(x0, x1, 6)) {
    s << "<line x1=\"" << num(sx(x)) << "\" y1=\"" << kTop + ph << "\" x2=\"" << num(sx(x))
      << "\" y2=\"" << kTop + ph + 5 << "\" stroke=\"black\"/>"
      << "<text x=\"" << num(sx(x)) << "\" y=\"" << kTop + ph + 20 << "\">" << num(x, "%g")
      << "</text>\n";
  }
  s << "</g>\n<g id=\"yticks\" text-anchor=\"end\">\n";
  const int step = std::max(1, static_cast<int>((ytop - ybot) / 8));
  for (int e = static_cast<int>(ybot); e <= static_cast<int>(ytop); e += step) {
    const double y = ly(e);
    s << "<line x1=\"" << kLeft - 5 << "\" y1=\"" << num(y) << "\" x2=\"" << kLeft << "\" y2=\""
      << num(y) << "\" stroke=\"black\"/>"
      << "<text x=\"" << kLeft - 8 << "\" y=\"" << num(y + 4) << "\">1e" << e << "</text>\n";
  }
  s << "</g>\n"
    << "<text id=\"xlabel\" x=\"" << kLeft + pw / 2 << "\" y=\"" << kHeight - 20
    << "\" text-anchor=\"middle\">eigenvalue</text>\n"
    << "<text id=\"ylabel\" x=\"22\" y=\"" << kTop + ph / 2
    << "\" text-anchor=\"middle\" transform=\"rotate(-90 22 " << kTop + ph / 2
    << ")\">density (log scale)</text>\n";
  // The curve.
  s << "<path id=\"density\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" d=\"";
  for (size_t i = 0; i < d.grid.size(); ++i)
    s << (i ? " L" : "M") << num(sx(d.grid[i])) << "," << num(sy(d.values[i]));
  s << "\"/>\n";
  // The extreme eigenvalues.
  if (p.have_extremes) {
    const double lo = std::clamp(p.lambda_min, x0, x1), hi = std::clamp(p.lambda_max, x0, x1);
    for (int k = 0; k < 2; ++k) {
      const double x = sx(k == 0 ? lo : hi);
      const std::string id = k == 0 ? "lambda_min" : "lambda_max";
      const double v = k == 0 ? p.lambda_min : p.lambda_max;
      s << "<g id=\"" << id << "\" fill=\"#d62728\" stroke=\"#d62728\">"
        << "<line x1=\"" << num(x) << "\" y1=\"" << kTop << "\" x2=\"" << num(x) << "\" y2=\""
        << kTop + ph << "\" stroke-dasharray=\"5,4\"/>"
        << "<text stroke=\"none\" x=\"" << num(k == 0 ? x + 4 : x - 4) << "\" y=\"" << kTop + 16
        << "\" text-anchor=\"" << (k == 0 ? "start" : "end") << "\">"
        << (k == 0 ? "\xCE\xBB_min = " : "\xCE\xBB_max = ") << num(v, "%.4g") << "</text></g>\n";
    }
  }
  s << "<text id=\"sigma\" x=\"" << kLeft + pw << "\" y=\"" << kHeight - 20
    << "\" text-anchor=\"end\" font-size=\"11\">Gaussian broadening \xCF\x83 = "
    << num(d.sigma, "%.3g") << "</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace hspec
