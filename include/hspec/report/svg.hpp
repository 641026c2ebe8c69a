// A small standalone SVG writer for the spectral density plot (no dependencies).
#pragma once
#include <string>

#include "hspec/solvers/density.hpp"

namespace hspec {

struct DensityPlot {
  std::string title;
  // Marked with vertical lines and labels; taken from the eigen solver when known.
  bool have_extremes = false;
  double lambda_min = 0, lambda_max = 0;
  // Values below max * floor are drawn at the floor (a log scale has no zero).
  double floor = 1e-8;
};

// Log-scale density against eigenvalue: the broadened curve of d as one <path>, labelled
// axes with ticks, the extreme eigenvalues marked. A complete SVG 1.1 document.
std::string density_svg(const Density& d, const DensityPlot& p);

// Escapes &, <, >, " and ' for XML text and attribute values.
std::string xml_escape(const std::string& s);

}  // namespace hspec
