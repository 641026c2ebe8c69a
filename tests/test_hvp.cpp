// Curvature-operator tests of MLPs against independent references: loss and gradient from a
// scalar forward pass and products from finite differences of the gradient (on both the
// graph operator and the MLP reference operator), and the reference operator's own
// invariants (symmetry, batching, chunking, the uncached primal path).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "hvp_test_util.hpp"

namespace hspec {
namespace {

using namespace hvptest;

int64_t outputs_for(Loss loss) {
  return loss == Loss::BCE ? 1 : 3;
}

std::string label(Activation a, Loss l, size_t layers) {
  return std::string(activation_name(a)) + "/" + loss_name(l) + "/" + std::to_string(layers);
}

TEST(HvpReference, LossAndGradientMatchScalarForwardPass) {
  for (Activation act : {Activation::Tanh, Activation::Sigmoid, Activation::Gelu, Activation::Relu,
                         Activation::Identity}) {
    for (Loss loss : {Loss::CE, Loss::MSE, Loss::BCE}) {
      SCOPED_TRACE(label(act, loss, 2));
      const int64_t out = outputs_for(loss);
      const Model m = make_mlp({4, 5, out}, act, 100 + int(act), true, 1.5);
      const Dataset ds = make_data(20, 4, loss, out, 200 + int(loss));
      double min_pre = 1e300;
      const double ref = ref_loss(m, ds, loss, &min_pre);
      // Relu's finite differences are valid only away from its kink.
      if (act == Activation::Relu) ASSERT_GT(min_pre, 1e-4);
      const auto fd = ref_gradient_fd(m, ds, loss, 1e-6);
      for_each_engine(m, ds, options(loss), [&](auto& op) {
        EXPECT_NEAR(op.loss_value(), ref, 1e-13 * std::abs(ref));
        const auto& g = op.gradient();
        ASSERT_EQ(g.size(), fd.size());
        // Central differences at h = 1e-6 are good to ~1e-9 relative (rounding ~eps / h), so
        // 2e-8 is far above their error yet catches a 1e-7 relative slip in a derivative.
        const double scale = max_abs(fd);
        for (size_t p = 0; p < g.size(); ++p)
          EXPECT_NEAR(g[p], fd[p], 2e-8 * scale) << "param " << p;
        EXPECT_NEAR(op.grad_norm(), norm(fd), 2e-8 * norm(fd));
      });
    }
  }
}

// Loss and gradient without biases and with a deeper chain (the offsets shift).
TEST(HvpReference, NoBiasDeepChainGradient) {
  const Model m = make_mlp({3, 4, 4, 2}, Activation::Tanh, 7, false, 1.2);
  const Dataset ds = make_data(15, 3, Loss::CE, 2, 8);
  const auto fd = ref_gradient_fd(m, ds, Loss::CE, 1e-6);
  for_each_engine(m, ds, options(Loss::CE), [&](auto& op) {
    EXPECT_EQ(op.dim(), 3 * 4 + 4 * 4 + 4 * 2);
    EXPECT_NEAR(op.loss_value(), ref_loss(m, ds, Loss::CE), 1e-13);
    EXPECT_LE(rel_diff(op.gradient(), fd), 2e-8);
    // The product too, against central differences of the gradient.
    const auto v = gaussian_vector(op.dim(), 9, 0);
    EXPECT_LE(rel_diff(apply_one(op, v), gradient_difference(m, ds, Loss::CE, v, 1e-5)), 1e-7);
  });
}

// Saturated units and logits in the thousands: exp would overflow in a naive softmax,
// sigmoid or softplus. Loss, gradient and products must stay finite (the operator throws
// otherwise) and the loss must match the reference, in both precisions.
TEST(HvpReference, SaturatedUnitsStayFinite) {
  for (Loss loss : {Loss::CE, Loss::BCE}) {
    SCOPED_TRACE(loss_name(loss));
    const int64_t out = outputs_for(loss);
    const Model m = make_mlp({4, 6, out}, Activation::Sigmoid, 50, true, 3000.0);
    const Dataset ds = make_data(12, 4, loss, out, 51);
    const double ref = ref_loss(m, ds, loss);
    ASSERT_GT(ref, 100.0) << "the logits are not large";
    const auto u = gaussian_vector(m.num_params(), 52, 0);
    const std::vector<float> u32(u.begin(), u.end());
    std::vector<float> y32(u.size());
    EXPECT_NO_THROW({
      for_each_engine(m, ds, options(loss), [&](auto& op) {
        EXPECT_NEAR(op.loss_value(), ref, 1e-12 * ref);
        EXPECT_GT(op.grad_norm(), 0.0);
        apply_one(op, u);
      });
      for_each_engine<float>(m, ds, options(loss), [&](auto& op32) {
        EXPECT_NEAR(op32.loss_value(), ref, 1e-5 * ref);
        op32.apply(BlockView<const float>(u32.data(), op32.dim(), 1),
                   BlockView<float>(y32.data(), op32.dim(), 1));
      });
    });
  }
}

TEST(HvpFiniteDiff, ProductsMatchCentralDifferencesOfTheGradient) {
  // At h = 1e-5 the truncation error (~h^2) and the rounding (~eps / h) both stay near
  // 1e-9 relative; 1e-7 leaves a wide margin.
  const double h = 1e-5;
  for (const std::vector<int64_t>& hidden : {std::vector<int64_t>{6}, {5, 4}}) {
    for (Activation act : {Activation::Tanh, Activation::Sigmoid, Activation::Gelu}) {
      for (Loss loss : {Loss::CE, Loss::MSE, Loss::BCE}) {
        SCOPED_TRACE(label(act, loss, hidden.size() + 1));
        const int64_t out = outputs_for(loss);
        std::vector<int64_t> widths = {4};
        widths.insert(widths.end(), hidden.begin(), hidden.end());
        widths.push_back(out);
        const Model m = make_mlp(widths, act, 300 + int(act), true, 1.5);
        const Dataset ds = make_data(16, 4, loss, out, 400 + int(loss));
        for (uint64_t dir = 0; dir < 2; ++dir) {
          const auto v = gaussian_vector(m.num_params(), 500, dir);
          const auto fd = gradient_difference(m, ds, loss, v, h);
          for (Engine e : kEngines) {
            auto op = make_operator(e, m, ds, options(loss));
            EXPECT_LE(rel_diff(apply_one(*op, v), fd), 1e-7)
                << engine_name(e) << " direction " << dir;
          }
        }
      }
    }
  }
}

// Relu's Hessian has no phi'' term; away from kinks it still matches finite differences.
TEST(HvpFiniteDiff, ReluAwayFromKinks) {
  const Model m = make_mlp({4, 6, 3}, Activation::Relu, 9, true, 1.5);
  const Dataset ds = make_data(16, 4, Loss::CE, 3, 10);
  double min_pre = 1e300;
  ref_loss(m, ds, Loss::CE, &min_pre);
  ASSERT_GT(min_pre, 1e-3);
  const auto v = gaussian_vector(m.num_params(), 11, 0);
  const auto fd = gradient_difference(m, ds, Loss::CE, v, 1e-5);
  for (Engine e : kEngines) {
    auto op = make_operator(e, m, ds, options(Loss::CE));
    EXPECT_LE(rel_diff(apply_one(*op, v), fd), 1e-7) << engine_name(e);
  }
}

TEST(HvpConsistency, SymmetricBilinearForm) {
  for (Curvature curv : {Curvature::Hessian, Curvature::GGN}) {
    for (Loss loss : {Loss::CE, Loss::MSE, Loss::BCE}) {
      SCOPED_TRACE(std::string(curvature_name(curv)) + "/" + loss_name(loss));
      const int64_t out = outputs_for(loss);
      const Model m = make_mlp({5, 6, 4, out}, Activation::Gelu, 600, true, 1.5);
      const Dataset ds = make_data(24, 5, loss, out, 601);
      MlpReferenceOperator<double> op(m, ds, options(loss, curv));
      for (uint64_t t = 0; t < 3; ++t) {
        const auto u = gaussian_vector(op.dim(), 602, 2 * t);
        const auto v = gaussian_vector(op.dim(), 602, 2 * t + 1);
        const auto hu = apply_one(op, u), hv = apply_one(op, v);
        EXPECT_NEAR(dot(u, hv), dot(v, hu), 1e-12 * norm(u) * norm(hv));
      }
    }
  }
}

// k directions in one apply (also with a leading dimension > dim) equal k single applies.
TEST(HvpConsistency, BatchedApplyEqualsSingleApplies) {
  for (Curvature curv : {Curvature::Hessian, Curvature::GGN}) {
    SCOPED_TRACE(curvature_name(curv));
    const Model m = make_mlp({5, 7, 3}, Activation::Tanh, 700, true, 1.5);
    const Dataset ds = make_data(21, 5, Loss::CE, 3, 701);
    MlpReferenceOperator<double> op(m, ds, options(Loss::CE, curv, 8));
    const int64_t n = op.dim(), k = 5, ld = n + 3;
    std::vector<double> x(static_cast<size_t>(ld * k), 0.0), y(static_cast<size_t>(ld * k), -7.0);
    for (int64_t j = 0; j < k; ++j)
      for (int64_t i = 0; i < n; ++i) x[i + j * ld] = rng::gaussian(702, j, i);
    const int64_t before = op.products();
    op.apply(BlockView<const double>(x.data(), n, k, ld), BlockView<double>(y.data(), n, k, ld));
    EXPECT_EQ(op.products() - before, k);
    for (int64_t j = 0; j < k; ++j) {
      const std::vector<double> xj(x.begin() + j * ld, x.begin() + j * ld + n);
      const auto single = apply_one(op, xj);
      const std::vector<double> yj(y.begin() + j * ld, y.begin() + j * ld + n);
      EXPECT_LE(rel_diff(yj, single), 1e-14) << "column " << j;
      for (int64_t i = n; i < ld; ++i) EXPECT_EQ(y[i + j * ld], -7.0) << "padding overwritten";
    }
  }
}

// Chunking the samples and recomputing the primal pass per chunk change only the order of
// floating-point sums: products, loss and gradient agree to rounding.
TEST(HvpConsistency, ChunkedAndUncachedPathsMatchUnchunked) {
  for (Curvature curv : {Curvature::Hessian, Curvature::GGN}) {
    for (Loss loss : {Loss::CE, Loss::MSE, Loss::BCE}) {
      SCOPED_TRACE(std::string(curvature_name(curv)) + "/" + loss_name(loss));
      const int64_t out = outputs_for(loss);
      const Model m = make_mlp({4, 6, 5, out}, Activation::Sigmoid, 800, true, 1.5);
      const Dataset ds = make_data(20, 4, loss, out, 801);

      MlpReferenceOperator<double> whole(m, ds, options(loss, curv, 4));
      EXPECT_EQ(whole.chunk_size(), 20);
      EXPECT_TRUE(whole.primal_cached());

      MlpReferenceOptions o = options(loss, curv, 4);
      o.chunk = 3;  // 20 samples: six chunks of 3 and a last one of 2
      MlpReferenceOperator<double> chunked(m, ds, o);
      EXPECT_EQ(chunked.chunk_size(), 3);
      EXPECT_TRUE(chunked.primal_cached());

      o.memory_budget = 256;  // far below the cached primal pass: recompute per chunk
      MlpReferenceOperator<double> uncached(m, ds, o);
      EXPECT_FALSE(uncached.primal_cached());
      EXPECT_EQ(uncached.chunk_size(), 3);

      for (auto* op : {&chunked, &uncached}) {
        EXPECT_NEAR(op->loss_value(), whole.loss_value(), 1e-14 * whole.loss_value());
        EXPECT_LE(rel_diff(op->gradient(), whole.gradient()), 1e-14);
      }
      const int64_t n = whole.dim(), k = 3;
      std::vector<double> x(static_cast<size_t>(n * k));
      for (int64_t i = 0; i < n * k; ++i) x[i] = rng::gaussian(802, 0, i);
      auto run = [&](MlpReferenceOperator<double>& op) {
        std::vector<double> y(static_cast<size_t>(n * k));
        op.apply(BlockView<const double>(x.data(), n, k), BlockView<double>(y.data(), n, k));
        return y;
      };
      const auto yw = run(whole), yc = run(chunked), yu = run(uncached);
      EXPECT_LE(rel_diff(yc, yw), 1e-14);
      EXPECT_LE(rel_diff(yu, yw), 1e-14);
      EXPECT_LE(rel_diff(yu, yc), 1e-15);
      // A second apply on the uncached operator reuses its scratch chunk: same answer.
      EXPECT_EQ(run(uncached), yu);
    }
  }
}

// The budget alone (no explicit chunk) also selects the uncached path, with small chunks.
TEST(HvpConsistency, TinyBudgetDerivesChunkAndDropsCache) {
  const Model m = make_mlp({4, 6, 3}, Activation::Tanh, 900, true, 1.5);
  const Dataset ds = make_data(20, 4, Loss::CE, 3, 901);
  MlpReferenceOptions o = options(Loss::CE, Curvature::Hessian, 4);
  o.memory_budget = 2048;
  MlpReferenceOperator<double> tiny(m, ds, o);
  EXPECT_FALSE(tiny.primal_cached());
  EXPECT_GE(tiny.chunk_size(), 1);
  EXPECT_LT(tiny.chunk_size(), 20);
  MlpReferenceOperator<double> whole(m, ds, options(Loss::CE, Curvature::Hessian, 4));
  EXPECT_LE(rel_diff(dense_from_operator(tiny), dense_from_operator(whole)), 1e-14);
}

}  // namespace
}  // namespace hspec
