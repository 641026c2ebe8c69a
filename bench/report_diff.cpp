// Compares the eigenvalues of two `hspec analyze --json` reports, for the GPU check script
// (which cannot count on python): prints the largest difference of the top and bottom
// values relative to |lambda_max| of the first report, and exits 1 when it is above TOL, when
// the reports list different numbers of values, or when either one did not converge.
// Usage: hspec_report_diff A.json B.json TOL
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace {

nlohmann::json read_report(const char* path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(std::string("cannot open ") + path);
  return nlohmann::json::parse(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: hspec_report_diff A.json B.json TOL\n");
    return 2;
  }
  try {
    const nlohmann::json a = read_report(argv[1]), b = read_report(argv[2]);
    const double tol = std::stod(argv[3]);
    if (a["top"].empty()) throw std::runtime_error("the first report has no top values");
    const double scale = std::fabs(a["top"][0]["value"].get<double>());
    double worst = 0;
    for (const char* end : {"top", "bottom"}) {
      if (a[end].size() != b[end].size())
        throw std::runtime_error(std::string("different numbers of ") + end + " values");
      for (size_t i = 0; i < a[end].size(); ++i)
        worst = std::fmax(
            worst, std::fabs(a[end][i]["value"].get<double>() - b[end][i]["value"].get<double>()));
    }
    const bool converged = a["converged"].get<bool>() && b["converged"].get<bool>();
    const double rel = scale > 0 ? worst / scale : worst;
    std::printf("max |a - b| / |lambda_max| = %.3e (lambda_max %.10g; tol %.1e; %s, %s)%s\n", rel,
                a["top"][0]["value"].get<double>(), tol, a["device"].get<std::string>().c_str(),
                b["device"].get<std::string>().c_str(), converged ? "" : " NOT CONVERGED");
    return rel <= tol && converged ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hspec_report_diff: %s\n", e.what());
    return 1;
  }
}
