// Every primitive of the graph engine's compute seam on CUDA against the CPU backend (the
// plain reference loops of host/backends/cpu/), fp32 and fp64, seeded inputs, the same call
// made on both through one harness (Harness::run). Five typed tests cover every Compute<T>
// member between them, with padding, strides, dilation, groups, broadcasting, overlapping
// pooling windows with ties, accumulation and each loss; a new primitive gets its case here.
// Copies and index results must match exactly; arithmetic to a few ulps of the precision.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gpu_test_util.hpp"
#include "hspec/backends/cuda/cuda_compute.hpp"
#include "hspec/error.hpp"
#include "hspec/graph/compute.hpp"
#include "hspec/random.hpp"

namespace hspec {
namespace {

// The same tensor on both backends: side 0 = CPU, side 1 = CUDA.
template <class U>
struct Twin {
  Buffer<U> side[2];
  int64_t n = 0;
  U* operator[](int s) const { return side[s].data(); }
};

template <class T>
class Harness {
 public:
  Harness() : cx_{make_cpu_compute<T>(), make_cuda_compute<T>(0)} {}

  Twin<T> from(const std::vector<T>& host) {
    Twin<T> t;
    t.n = int64_t(host.size());
    for (int s = 0; s < 2; ++s) {
      t.side[s] = cx_[s]->template alloc<T>(t.n);
      cx_[s]->upload(host.data(), t.side[s].data(), t.n);
    }
    return t;
  }
  // Seeded N(0, 1) values; `levels` > 0 rounds them to multiples of 1/levels (ties).
  Twin<T> random(int64_t n, uint64_t stream, double levels = 0, double shift = 0) {
    std::vector<T> h(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      double v = rng::gaussian(17, stream, i);
      if (levels > 0) v = std::round(v * levels) / levels;
      h[size_t(i)] = T(v + shift);
    }
    return from(h);
  }
  Twin<int64_t> index(const std::vector<int64_t>& host) {
    Twin<int64_t> t;
    t.n = int64_t(host.size());
    for (int s = 0; s < 2; ++s) {
      t.side[s] = cx_[s]->template alloc<int64_t>(t.n);
      cx_[s]->upload_index(host.data(), t.side[s].data(), t.n);
    }
    return t;
  }
  Twin<int64_t> index_buffer(int64_t n) {
    Twin<int64_t> t;
    t.n = n;
    for (int s = 0; s < 2; ++s) t.side[s] = cx_[s]->template alloc<int64_t>(n);
    return t;
  }
  // Runs f(compute, side) on the CPU and then on the card.
  void run(const std::function<void(Compute<T>&, int)>& f) {
    for (int s = 0; s < 2; ++s) f(*cx_[s], s);
  }
  std::vector<T> host(const Twin<T>& t, int s) {
    std::vector<T> h(static_cast<size_t>(t.n));
    cx_[s]->download(t[s], h.data(), t.n);
    return h;
  }
  // max |cuda - cpu| <= rel * max(1, max |cpu|); rel = 0 asks for equal bits.
  void expect_close(const Twin<T>& t, double rel, const std::string& what) {
    const std::vector<T> ref = host(t, 0), got = host(t, 1);
    double scale = 1, worst = 0;
    int64_t at = -1;
    for (size_t i = 0; i < ref.size(); ++i) {
      scale = std::max(scale, std::fabs(double(ref[i])));
      const double d = std::fabs(double(got[i]) - double(ref[i]));
      if (!(d <= worst)) {  // NaN counts as the worst
        worst = std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
        at = int64_t(i);
      }
    }
    if (at < 0) return;  // equal everywhere
    EXPECT_LE(worst, rel * scale) << what << ": worst at " << at << " (cpu " << ref[size_t(at)]
                                  << ", cuda " << got[size_t(at)] << ")";
  }
  void expect_equal(const Twin<int64_t>& t, const std::string& what) {
    const std::vector<int64_t> ref(t[0], t[0] + t.n);  // the CPU side is host memory
    std::vector<int64_t> got(static_cast<size_t>(t.n));
    ASSERT_EQ(cudaMemcpy(got.data(), t[1], sizeof(int64_t) * got.size(), cudaMemcpyDeviceToHost),
              cudaSuccess);
    EXPECT_EQ(got, ref) << what;
  }
  Compute<T>& cpu() { return *cx_[0]; }
  Compute<T>& cuda() { return *cx_[1]; }

 private:
  std::unique_ptr<Compute<T>> cx_[2];
};

// Arithmetic tolerance: a few hundred ulps of T, relative to the result's scale.
template <class T>
double tol() {
  return std::is_same_v<T, double> ? 1e-12 : 5e-5;
}

WindowGeom window(int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                  int64_t dh, int64_t dw, int64_t pt, int64_t pl, int64_t pb, int64_t pr) {
  WindowGeom g;
  g.channels = C;
  g.height = H;
  g.width = W;
  g.kh = kh;
  g.kw = kw;
  g.sh = sh;
  g.sw = sw;
  g.dh = dh;
  g.dw = dw;
  g.pad_top = pt;
  g.pad_left = pl;
  g.pad_bottom = pb;
  g.pad_right = pr;
  g.out_h = (H + pt + pb - dh * (kh - 1) - 1) / sh + 1;
  g.out_w = (W + pl + pr - dw * (kw - 1) - 1) / sw + 1;
  return g;
}

template <class T>
class CudaGraphCompute : public testing::Test {};
using Precisions = testing::Types<float, double>;
TYPED_TEST_SUITE(CudaGraphCompute, Precisions);

TYPED_TEST(CudaGraphCompute, MemoryCopiesAndGemms) {
  HSPEC_REQUIRE_DEVICE();
  using T = TypeParam;
  Harness<T> h;
  EXPECT_EQ(h.cuda().where(), Where::Device);
  EXPECT_STREQ(h.cuda().name(), "cuda");
  const double eps = tol<T>();

  Twin<T> x = h.random(1000, 1), y = h.random(1000, 2);
  h.run([&](Compute<T>& c, int s) { c.fill(y[s] + 10, 500, T(2.5)); });
  h.expect_close(y, 0, "fill");
  for (bool acc : {false, true}) {
    h.run([&](Compute<T>& c, int s) { c.axpy(999, T(-0.75), x[s], y[s], acc); });
    h.expect_close(y, eps, acc ? "axpy accumulate" : "axpy");
    // 7 columns of 33 rows between leading dimensions 40 and 50.
    h.run([&](Compute<T>& c, int s) { c.copy_2d(x[s] + 3, 40, y[s] + 1, 50, 33, 7, acc); });
    h.expect_close(y, acc ? eps : 0, acc ? "copy_2d accumulate" : "copy_2d");
  }
  for (int s = 0; s < 2; ++s) EXPECT_TRUE((s ? h.cuda() : h.cpu()).all_finite(x[s], x.n));
  for (T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()}) {
    h.run([&](Compute<T>& c, int s) { c.fill(x[s] + 777, 1, bad); });
    EXPECT_FALSE(h.cpu().all_finite(x[0], x.n));
    EXPECT_FALSE(h.cuda().all_finite(x[1], x.n));
    EXPECT_TRUE(h.cuda().all_finite(x[1], 777));  // the flag is reset between calls
  }

  // Strided-batched GEMMs: every transposition, padded leading dimensions, a shared (stride
  // 0) operand, beta 0 and not.
  const int64_t m = 13, n = 9, k = 21, batch = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool shared_b : {false, true}) {
        const int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3;
        const int64_t sa = (ta ? k : m) * lda + 5, sb = shared_b ? 0 : (tb ? n : k) * ldb;
        const int64_t sc = m * ldc + 4;
        Twin<T> A = h.random(sa * batch, 3), B = h.random((tb ? n : k) * ldb * batch, 4);
        Twin<T> C = h.random(sc * batch, 5);
        for (T beta : {T(0), T(0.5)}) {
          h.run([&](Compute<T>& c, int s) {
            c.gemm_batched(ta, tb, m, n, k, T(1.25), A[s], lda, sa, B[s], ldb, sb, beta, C[s], ldc,
                           sc, batch);
          });
          h.expect_close(C, 10 * eps,
                         "gemm ta " + std::to_string(ta) + " tb " + std::to_string(tb) +
                             " shared " + std::to_string(shared_b) + " beta " +
                             std::to_string(double(beta)));
        }
      }
  // [a, b, c, d] -> [a, c, b, d].
  Twin<T> src = h.random(2 * 3 * 4 * 5, 6), dst = h.random(2 * 3 * 4 * 5, 7);
  for (bool acc : {false, true}) {
    h.run([&](Compute<T>& c, int s) { c.swap_axes12(src[s], dst[s], 2, 3, 4, 5, acc); });
    h.expect_close(dst, acc ? eps : 0, "swap_axes12");
  }
}

TYPED_TEST(CudaGraphCompute, ElementwiseBroadcastsAndReductions) {
  HSPEC_REQUIRE_DEVICE();
  using T = TypeParam;
  Harness<T> h;
  const double eps = tol<T>();
  const int64_t n = 3000, reps = 3;
  Twin<T> x_all = h.random(n, 10, 0, 0), sc = h.random(n, 11), r = h.random(n * reps, 12);
  Twin<T> out = h.random(n * reps, 13);
  // Sqrt, Rsqrt and Reciprocal on positive inputs (their domain in LayerNorm and Div).
  Twin<T> pos = h.from([&] {
    std::vector<T> p = h.host(x_all, 0);
    for (T& v : p) v = std::fabs(v) + T(0.25);
    return p;
  }());
  for (UnaryKind f :
       {UnaryKind::Relu, UnaryKind::Tanh, UnaryKind::Sigmoid, UnaryKind::Erf, UnaryKind::GeluErf,
        UnaryKind::GeluTanh, UnaryKind::Sqrt, UnaryKind::Rsqrt, UnaryKind::Reciprocal}) {
    const std::string name = "unary " + std::to_string(int(f));
    const bool positive =
        f == UnaryKind::Sqrt || f == UnaryKind::Rsqrt || f == UnaryKind::Reciprocal;
    const Twin<T>& x = positive ? pos : x_all;
    h.run([&](Compute<T>& c, int s) { c.unary(f, x[s], out[s], n); });
    h.expect_close(out, eps, name);
    for (int order : {1, 2})
      for (bool with_s : {false, true})
        for (bool acc : {false, true}) {
          h.run([&](Compute<T>& c, int s) {
            c.unary_derivative(f, order, x[s], with_s ? sc[s] : nullptr, r[s], out[s], n, reps,
                               acc);
          });
          h.expect_close(out, eps, name + " derivative " + std::to_string(order));
        }
  }

  // Broadcast binary ops over rank-4 shapes (both operands broadcast, on different axes).
  struct Bc {
    Shape a, b, o;
  };
  for (const Bc& bc :
       {Bc{{2, 3, 4, 5}, {1, 3, 1, 1}, {2, 3, 4, 5}}, Bc{{2, 1, 4, 1}, {1, 3, 1, 5}, {2, 3, 4, 5}},
        Bc{{1, 1, 1, 1}, {2, 3, 4, 5}, {2, 3, 4, 5}},
        Bc{{6, 7, 1, 9}, {6, 7, 1, 9}, {6, 7, 1, 9}}}) {
    Twin<T> a = h.random(shape_numel(bc.a), 20), b = h.random(shape_numel(bc.b), 21, 0, 3.0);
    Twin<T> o = h.random(shape_numel(bc.o), 22);
    for (BinaryKind op : {BinaryKind::Add, BinaryKind::Sub, BinaryKind::Mul, BinaryKind::Div})
      for (bool acc : {false, true}) {
        h.run([&](Compute<T>& c, int s) {
          c.binary(op, a[s], bc.a, b[s], bc.b, o[s], bc.o, T(0.5), acc);
        });
        h.expect_close(o, eps, "binary " + std::to_string(int(op)));
      }
    for (bool acc : {false, true}) {
      h.run([&](Compute<T>& c, int s) { c.broadcast_to(b[s], bc.b, o[s], bc.o, T(-2), acc); });
      h.expect_close(o, eps, "broadcast_to");
    }
  }

  // Reductions: few terms per output (one thread each) and many (one block each), the
  // reduced axes inner, outer and interleaved.
  struct Rd {
    Shape src, dst;
  };
  for (const Rd& rd : {Rd{{2, 3, 4, 5}, {2, 1, 4, 1}}, Rd{{4, 3, 50, 7}, {1, 3, 1, 1}},
                       Rd{{3, 16, 9, 9}, {1, 1, 1, 1}}, Rd{{5, 4, 3, 2}, {5, 4, 3, 2}},
                       Rd{{7, 300, 2, 1}, {7, 1, 2, 1}}}) {
    Twin<T> a = h.random(shape_numel(rd.src), 30), o = h.random(shape_numel(rd.dst), 31);
    for (bool acc : {false, true}) {
      h.run([&](Compute<T>& c, int s) { c.reduce_to(a[s], rd.src, o[s], rd.dst, T(0.25), acc); });
      h.expect_close(o, 10 * eps, "reduce_to");
    }
    // Deterministic: the same call twice gives the same bits.
    std::vector<T> first;
    for (int rep = 0; rep < 2; ++rep) {
      h.cuda().reduce_to(a[1], rd.src, o[1], rd.dst, T(1), false);
      const std::vector<T> now = h.host(o, 1);
      if (rep == 0)
        first = now;
      else
        EXPECT_EQ(now, first) << "reduce_to is not deterministic";
    }
  }
}

TYPED_TEST(CudaGraphCompute, LayoutSoftmaxAndGathers) {
  HSPEC_REQUIRE_DEVICE();
  using T = TypeParam;
  Harness<T> h;
  // A transpose of [4, 5, 6] to [6, 4, 5] (permuted strides), a reversed slice (negative
  // stride from the last element), a broadcast source (stride 0), each plain and accumulated.
  Twin<T> a = h.random(120, 40), o = h.random(120, 41);
  struct Box {
    Shape src_strides, dst_strides, extents;
    int64_t src_offset;
  };
  for (const Box& b :
       {Box{{1, 30, 6}, {20, 5, 1}, {6, 4, 5}, 0}, Box{{-30, -6, -1}, {30, 6, 1}, {4, 5, 6}, 119},
        Box{{0, 6, 1}, {30, 6, 1}, {4, 5, 6}, 0}})
    for (bool acc : {false, true}) {
      h.run([&](Compute<T>& c, int s) {
        c.strided_copy(a[s] + b.src_offset, b.src_strides, o[s], b.dst_strides, b.extents, acc);
      });
      h.expect_close(o, 0, "strided_copy");
    }
  // Softmax over the middle axis, rows long and short, with large logits and -inf entries.
  for (const Shape& sh : {Shape{3, 7, 5}, Shape{2, 300, 1}, Shape{1, 1, 9}}) {
    std::vector<T> v = h.host(h.random(shape_numel(sh), 42), 0);
    for (size_t i = 0; i < v.size(); ++i) {
      if (i % 5 == 1) v[i] *= T(60);
      if (i % 11 == 3 && sh[1] > 1) v[i] = -std::numeric_limits<T>::infinity();
    }
    Twin<T> x = h.from(v), y = h.random(shape_numel(sh), 43);
    h.run([&](Compute<T>& c, int s) { c.softmax(x[s], y[s], sh[0], sh[1], sh[2]); });
    h.expect_close(y, tol<T>(), "softmax");
  }
  // Row gathers and the scatter-add adjoint, repeated indices included (they must add up in
  // the CPU's order: equal bits), over two repetitions of the table.
  const int64_t rows = 7, width = 5, count = 12, reps = 2;
  Twin<int64_t> idx = h.index({3, 0, 3, 6, 1, 3, 0, 2, 6, 6, 5, 3});
  Twin<T> table = h.random(reps * rows * width, 44), got = h.random(reps * count * width, 45);
  for (bool acc : {false, true}) {
    h.run([&](Compute<T>& c, int s) {
      c.gather_rows(table[s], rows * width, idx[s], count, width, got[s], reps, acc);
    });
    h.expect_close(got, 0, "gather_rows");
  }
  h.run([&](Compute<T>& c, int s) {
    c.scatter_add_rows(got[s], idx[s], count, width, table[s], rows * width, reps);
  });
  h.expect_close(table, 0, "scatter_add_rows");
}

TYPED_TEST(CudaGraphCompute, WindowsAndPooling) {
  HSPEC_REQUIRE_DEVICE();
  using T = TypeParam;
  Harness<T> h;
  const double eps = tol<T>();
  // im2col / col2im: groups and per-group planes, asymmetric pads, strides, dilations.
  for (const WindowGeom& g : {window(3, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
                              window(2, 9, 8, 3, 2, 2, 1, 1, 2, 1, 0, 2, 1),
                              window(4, 6, 6, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0),
                              window(1, 5, 7, 2, 3, 1, 2, 2, 1, 0, 2, 1, 0)}) {
    const int64_t groups = 2, per_group = 3;
    const int64_t xs = groups * per_group * g.channels * g.in_plane();
    const int64_t cs = groups * g.channels * g.kh * g.kw * per_group * g.out_plane();
    Twin<T> x = h.random(xs, 40), cols = h.random(cs, 41);
    h.run([&](Compute<T>& c, int s) { c.im2col(x[s], cols[s], g, groups, per_group); });
    h.expect_close(cols, 0, "im2col");
    Twin<T> back = h.random(cs, 42), gx = h.random(xs, 43);
    h.run([&](Compute<T>& c, int s) { c.col2im(back[s], gx[s], g, groups, per_group); });
    h.expect_close(gx, eps, "col2im");
  }

  // Pooling: overlapping windows (stride below the kernel), padding, dilation, and inputs
  // rounded to halves so that windows hold ties (the first in scan order wins).
  for (const WindowGeom& g : {window(3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
                              window(2, 9, 7, 3, 2, 2, 1, 1, 1, 0, 1, 1, 0),
                              window(2, 8, 8, 2, 2, 2, 2, 1, 1, 0, 0, 1, 1),
                              window(1, 9, 9, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1)}) {
    const int64_t batch = 4, reps = 3, planes = batch * g.channels;
    Twin<T> x = h.random(planes * g.in_plane(), 50, 2.0);
    Twin<T> y = h.random(planes * g.out_plane(), 51);
    Twin<int64_t> am = h.index_buffer(planes * g.out_plane());
    h.run([&](Compute<T>& c, int s) { c.maxpool(x[s], y[s], am[s], g, batch); });
    h.expect_close(y, 0, "maxpool");
    h.expect_equal(am, "maxpool argmax");
    Twin<T> tx = h.random(reps * planes * g.in_plane(), 52);
    Twin<T> ty = h.random(reps * planes * g.out_plane(), 53);
    h.run([&](Compute<T>& c, int s) { c.maxpool_gather(tx[s], ty[s], am[s], g, batch, reps); });
    h.expect_close(ty, 0, "maxpool_gather");
    h.run([&](Compute<T>& c, int s) { c.maxpool_scatter(ty[s], tx[s], am[s], g, batch, reps); });
    h.expect_close(tx, eps, "maxpool_scatter");
    if (g.dh != 1 || g.dw != 1) continue;  // average pooling has no dilation
    for (bool pad : {false, true}) {
      for (bool acc : {false, true}) {
        h.run([&](Compute<T>& c, int s) { c.avgpool(x[s], y[s], g, pad, batch, acc); });
        h.expect_close(y, eps, "avgpool");
      }
      Twin<T> gx = h.random(planes * g.in_plane(), 54);
      h.run([&](Compute<T>& c, int s) { c.avgpool_adjoint(y[s], gx[s], g, pad, batch); });
      h.expect_close(gx, eps, "avgpool_adjoint");
    }
  }
}

TYPED_TEST(CudaGraphCompute, LossHeads) {
  HSPEC_REQUIRE_DEVICE();
  using T = TypeParam;
  Harness<T> h;
  const double eps = tol<T>();
  const int64_t n = 500, reps = 3;
  for (Loss loss : {Loss::CE, Loss::BCE, Loss::MSE}) {
    const int64_t out = loss == Loss::BCE ? 1 : 7;
    SCOPED_TRACE(loss_name(loss));
    std::vector<int64_t> labels(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      labels[size_t(i)] = int64_t(rng::bits(17, 60, i) % uint64_t(loss == Loss::BCE ? 2 : out));
    Twin<int64_t> lab = h.index(labels);
    // Logits rounded to quarters: some samples have tied maxima (the first one counts).
    Twin<T> z = h.random(n * out, 61, 4.0), targets = h.random(n * out, 62);
    Twin<T> grad = h.random(n * out, 63), curv = h.random(n * out, 64);
    double sum[2] = {0, 0};
    int64_t correct[2] = {0, 0};
    h.run([&](Compute<T>& c, int s) {
      sum[s] = c.loss_forward(loss, z[s], n, out, lab[s], targets[s], T(1.0 / 3000), grad[s],
                              curv[s], &correct[s]);
    });
    EXPECT_NEAR(sum[1], sum[0], 1e-12 * std::max(1.0, std::fabs(sum[0])));
    EXPECT_EQ(correct[1], correct[0]);
    h.expect_close(grad, eps, "loss gradient");
    if (loss != Loss::MSE) h.expect_close(curv, eps, "loss curvature data");
    Twin<T> rz = h.random(reps * n * out, 65), ro = h.random(reps * n * out, 66);
    h.run([&](Compute<T>& c, int s) {
      c.loss_curvature(loss, curv[s], rz[s], ro[s], n, out, reps, T(1.0 / 3000));
    });
    h.expect_close(ro, eps, "loss_curvature");
  }
}

TEST(CudaGraphComputeFactory, BadDeviceIsADeviceError) {
  HSPEC_REQUIRE_DEVICE();
  EXPECT_THROW(make_cuda_compute<float>(cuda_device_count()), DeviceError);
  EXPECT_THROW(make_cuda_compute<double>(-1), DeviceError);
}

}  // namespace
}  // namespace hspec
