// Lowering of the parameterised ops: Gemm and MatMul to Linear (a bias C as its third input,
// any other C a broadcast Add), Conv to Conv (+ an Add of the bias), BatchNormalization (inference
// form) to x * a + c with a = scale / sqrt(var + eps) and c = bias - mean * a.
#include <algorithm>
#include <cmath>

#include "planner.hpp"

namespace hspec::planning {

void Planner::lower_gemm(const GraphNode& n) {
  const int a = input(n, 0), b = input(n, 1);
  const PlanValue &va = value(a), &vb = value(b);
  const double alpha = attr_float(n, "alpha", 1.0), beta = attr_float(n, "beta", 1.0);
  const bool trans_a = attr_int(n, "transA", 0) != 0, trans_b = attr_int(n, "transB", 0) != 0;
  if (!va.batched()) fail(n, "the first input (A) must depend on the data");
  if (vb.batched()) fail(n, "a product of two data-dependent values is not supported yet");
  // A is [rows, features] with the samples in the rows (alone, or merged with per-sample
  // rows as in an exporter's [T N, E]): per sample, a product of its rows with op(B).
  const Shape la = logical_shape(va);
  if (la.size() != 2 || va.samples.axis != 0) fail(n, "A must be 2-D [samples, features]");
  if (trans_a) fail(n, "transA=1 would mix the samples");
  if (vb.shape.size() != 2)
    fail(n, "B has " + std::to_string(vb.shape.size()) + " dims, expected 2");
  const int64_t in = trans_b ? vb.shape[1] : vb.shape[0], out = trans_b ? vb.shape[0] : vb.shape[1];
  if (in != va.shape.back())
    fail(n, "A has " + std::to_string(va.shape.back()) + " features but B expects " +
                std::to_string(in));
  PlanStep s = step(n, StepKind::Linear);
  s.in = {a, b};
  s.alpha = alpha;
  s.trans_w = trans_b;
  s.rows_per_sample = va.samples.outer * va.samples.inner;
  s.in_dim = in;
  s.out_dim = out;
  const bool has_c = has_input(n, 2) && beta != 0.0;
  const std::string& name = n.outputs[0];
  Shape shape = va.shape;
  shape.back() = out;
  const SampleLayout layout = va.samples;
  int c = has_c ? input(n, 2) : -1;
  if (has_c && value(c).batched()) fail(n, "C must not depend on the data");
  // A bias (C of [out] or [1, out], beta 1) is the Linear step's own third input: its rules
  // add it in the passes they make anyway instead of a separate broadcast Add.
  const bool bias =
      has_c && beta == 1.0 && (value(c).shape == Shape{out} || value(c).shape == Shape{1, out});
  if (bias) s.in.push_back(c);
  s.out = add_value(has_c && !bias ? temp(name, "gemm") : name, ValueClass::Data, shape);
  set_layout(s.out, layout);
  const int y = s.out;
  add_step(std::move(s));
  if (!has_c || bias) return;
  if (beta != 1.0)
    c = binary(n, BinaryKind::Mul, c, add_constant(temp(name, "beta"), {}, {beta}),
               temp(name, "beta_c"));
  binary(n, BinaryKind::Add, y, c, name);
}

void Planner::lower_matmul(const GraphNode& n) {
  const int a = input(n, 0), b = input(n, 1);
  const PlanValue &va = value(a), &vb = value(b);
  if (va.batched() && vb.batched()) {  // per-sample (batched) matrix products
    if (va.samples != vb.samples)
      fail(n, "the operands hold their samples differently (" + describe(va.samples) + " vs " +
                  describe(vb.samples) + ")");
    const SampleLayout layout = va.samples;
    if (va.shape.size() < 2 || vb.shape.size() < 2)
      fail(n, "a product of two data-dependent values needs operands of rank >= 3");
    // Moved samples must sit on a batch axis of both (same logical rank); the batch axes,
    // the samples' factors among them, then line up physically.
    const int64_t ra = int64_t(logical_shape(va).size()), rb = int64_t(logical_shape(vb).size());
    if (!layout.standard() && (ra != rb || layout.axis >= ra - 2))
      fail(n, "the samples sit " + describe(layout) +
                  ", which is not a batch axis shared by both operands");
    // Batch axes broadcast as numpy does: the shorter operand gets leading 1s, and an
    // operand whose batch axes are smaller is expanded (a broadcast Add of zeros), so the
    // product itself is one strided-batched GEMM per direction.
    const size_t r = std::max(va.shape.size(), vb.shape.size());
    Shape batch(r - 2, 1);
    for (int side = 0; side < 2; ++side) {
      const Shape& sh = value(side ? b : a).shape;
      const size_t pad = r - sh.size();
      for (size_t i = 0; i + 2 < r; ++i) {
        const int64_t d = i < pad ? 1 : sh[i - pad];
        if (d != batch[i] && d != 1 && batch[i] != 1)
          fail(n, "batch axes do not broadcast (" + std::to_string(d) + " vs " +
                      std::to_string(batch[i]) + ")");
        batch[i] = std::max(batch[i], d);
      }
    }
    int ops[2] = {a, b};
    for (int side = 0; side < 2; ++side) {
      Shape sh = value(ops[side]).shape;
      if (sh.size() < r) {
        sh.insert(sh.begin(), r - sh.size(), 1);
        ops[side] =
            alias(n, ops[side], sh, temp(n.outputs[0], side ? "b_unsqueezed" : "a_unsqueezed"));
      }
      Shape full = batch;
      full.push_back(sh[sh.size() - 2]);
      full.push_back(sh.back());
      if (full == sh) continue;
      if (!layout.standard()) fail(n, "batch axes would broadcast around moved samples");
      const std::string base = temp(n.outputs[0], side ? "b" : "a");
      Shape zshape = full;
      zshape.insert(zshape.begin(), 1);  // the sample axis
      const int zeros = add_constant(base + "_zeros", zshape,
                                     std::vector<double>(size_t(shape_numel(zshape)), 0.0));
      ops[side] = binary(n, BinaryKind::Add, ops[side], zeros, base + "_broadcast");
    }
    const PlanValue &ea = value(ops[0]), &eb = value(ops[1]);
    if (ea.shape[r - 1] != eb.shape[r - 2])
      fail(n, "inner dimensions differ (" + std::to_string(ea.shape[r - 1]) + " vs " +
                  std::to_string(eb.shape[r - 2]) + ")");
    PlanStep s = step(n, StepKind::MatMulData);
    s.in = {ops[0], ops[1]};
    s.rows_per_sample = ea.shape[r - 2];
    s.in_dim = ea.shape[r - 1];
    s.out_dim = eb.shape[r - 1];
    s.matmuls_per_sample = ea.numel() / (s.rows_per_sample * s.in_dim);
    Shape shape = ea.shape;
    shape.back() = s.out_dim;
    s.out = add_value(n.outputs[0], ValueClass::Data, shape);
    set_layout(s.out, layout);
    add_step(std::move(s));
    return;
  }
  if (!va.batched()) fail(n, "only x @ W with x depending on the data is supported");
  if (vb.shape.size() != 2)
    fail(n, "the second input has " + std::to_string(vb.shape.size()) + " dims, expected 2");
  if (va.shape.empty()) fail(n, "the first input must have a feature axis");
  const int64_t last = int64_t(logical_shape(va).size()) - 1;
  if (va.samples.axis == last)
    fail(n, "the contracted axis holds the samples (" + describe(va.samples) + ")");
  if (va.shape.back() != vb.shape[0])
    fail(n, "inner dimensions differ (" + std::to_string(va.shape.back()) + " vs " +
                std::to_string(vb.shape[0]) + ")");
  PlanStep s = step(n, StepKind::Linear);
  s.in = {a, b};
  s.trans_w = false;
  s.in_dim = vb.shape[0];
  s.out_dim = vb.shape[1];
  s.rows_per_sample = va.numel() / s.in_dim;
  Shape shape = va.shape;
  shape.back() = s.out_dim;
  const SampleLayout layout = va.samples;
  s.out = add_value(n.outputs[0], ValueClass::Data, shape);
  set_layout(s.out, layout);
  add_step(std::move(s));
}

// Window attributes shared by Conv and the pools: kernel, strides, pads, dilations.
WindowGeom window_geom(const Planner& p, const GraphNode& n, const Shape& x, int64_t kh,
                       int64_t kw) {
  WindowGeom g;
  g.channels = x[0];
  g.height = x[1];
  g.width = x[2];
  g.kh = kh;
  g.kw = kw;
  const auto strides = p.attr_ints(n, "strides", {1, 1});
  const auto dil = p.attr_ints(n, "dilations", {1, 1});
  const std::string auto_pad = p.attr_string(n, "auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID")
    p.fail(n, "auto_pad=" + auto_pad + " is not supported (export with explicit pads)");
  const auto pads = p.attr_ints(n, "pads", {0, 0, 0, 0});
  if (strides.size() != 2 || dil.size() != 2 || pads.size() != 4)
    p.fail(n, "only 2-D windows are supported (strides, dilations and pads of 2, 2, 4 values)");
  if (p.attr_int(n, "ceil_mode", 0) != 0) p.fail(n, "ceil_mode=1 is not supported");
  g.sh = strides[0];
  g.sw = strides[1];
  g.dh = dil[0];
  g.dw = dil[1];
  g.pad_top = pads[0];
  g.pad_left = pads[1];
  g.pad_bottom = pads[2];
  g.pad_right = pads[3];
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || kh < 1 || kw < 1 || g.pad_top < 0 ||
      g.pad_left < 0 || g.pad_bottom < 0 || g.pad_right < 0)
    p.fail(n, "kernel, strides and dilations must be positive and pads non-negative");
  const int64_t eh = g.dh * (kh - 1) + 1, ew = g.dw * (kw - 1) + 1;
  const int64_t hp = g.height + g.pad_top + g.pad_bottom, wp = g.width + g.pad_left + g.pad_right;
  if (hp < eh || wp < ew) p.fail(n, "the window is larger than the padded input");
  g.out_h = (hp - eh) / g.sh + 1;
  g.out_w = (wp - ew) / g.sw + 1;
  return g;
}

void Planner::lower_conv(const GraphNode& n) {
  const int x = input(n, 0), w = input(n, 1);
  const PlanValue &vx = value(x), &vw = value(w);
  if (!vx.batched()) fail(n, "the input must depend on the data");
  if (vw.batched()) fail(n, "a weight that depends on the data is not supported");
  if (vx.shape.size() != 3)
    fail(n, "input has " + std::to_string(vx.shape.size() + 1) +
                " dims, expected 4 (2-D convolution)");
  if (vw.shape.size() != 4)
    fail(n, "weight has " + std::to_string(vw.shape.size()) + " dims, expected 4");
  const int64_t group = attr_int(n, "group", 1);
  if (group < 1 || vx.shape[0] % group != 0 || vw.shape[0] % group != 0)
    fail(n, "group=" + std::to_string(group) + " does not divide the input channels (" +
                std::to_string(vx.shape[0]) + ") and output channels (" +
                std::to_string(vw.shape[0]) + ")");
  if (vw.shape[1] * group != vx.shape[0])
    fail(n, "weight expects " + std::to_string(vw.shape[1] * group) +
                " input channels, the input has " + std::to_string(vx.shape[0]));
  const auto ks = attr_ints(n, "kernel_shape", {vw.shape[2], vw.shape[3]});
  if (ks.size() != 2 || ks[0] != vw.shape[2] || ks[1] != vw.shape[3])
    fail(n, "kernel_shape differs from the weight's shape");
  PlanStep s = step(n, StepKind::Conv);
  s.geom = window_geom(*this, n, vx.shape, vw.shape[2], vw.shape[3]);
  s.out_channels = vw.shape[0];
  s.conv_groups = group;
  s.in = {x, w};
  const bool has_bias = has_input(n, 2);
  const std::string& name = n.outputs[0];
  s.out = add_value(has_bias ? temp(name, "conv") : name, ValueClass::Data,
                    {s.out_channels, s.geom.out_h, s.geom.out_w});
  const int y = s.out;
  const int64_t oc = s.out_channels;
  add_step(std::move(s));
  if (!has_bias) return;
  const int b = input(n, 2);
  if (value(b).batched() || value(b).shape != Shape{oc})
    fail(n, "bias must be a [" + std::to_string(oc) + "] parameter or constant");
  binary(n, BinaryKind::Add, y, alias(n, b, {oc, 1, 1}, temp(name, "bias")), name);
}

void Planner::lower_batchnorm(const GraphNode& n) {
  const int x = input(n, 0), scale = input(n, 1), bias = input(n, 2), mean = input(n, 3),
            var = input(n, 4);
  const PlanValue& vx = value(x);
  if (attr_int(n, "training_mode", 0) != 0)
    fail(n, "training_mode=1 is not supported (export in eval mode)");
  if (!vx.batched() || vx.shape.empty())
    fail(n, "the input must depend on the data and have a channel axis");
  const int64_t c = vx.shape[0];
  for (int v : {scale, bias, mean, var})
    if (value(v).shape != Shape{c})
      fail(n, "scale, bias, mean and var must have shape [" + std::to_string(c) + "]");
  if (value(mean).cls != ValueClass::Constant || value(var).cls != ValueClass::Constant)
    fail(n, "the running mean and variance must be constants");
  const double eps = attr_float(n, "epsilon", 1e-5);
  Shape per_channel(vx.shape.size(), 1);
  per_channel[0] = c;
  const std::string& name = n.outputs[0];
  std::vector<double> inv(static_cast<size_t>(c));
  const std::vector<double> mean_v = value(mean).host;
  for (int64_t i = 0; i < c; ++i) {
    const double v = value(var).host[size_t(i)] + eps;
    if (!(v > 0)) fail(n, "variance + epsilon is not positive in channel " + std::to_string(i));
    inv[size_t(i)] = 1.0 / std::sqrt(v);
  }
  const int inv_c = add_constant(temp(name, "inv_std"), per_channel, inv);
  const int mean_c = add_constant(temp(name, "mean"), per_channel, mean_v);
  const int a = binary(n, BinaryKind::Mul, alias(n, scale, per_channel, temp(name, "scale")), inv_c,
                       temp(name, "a"));
  const int ma = binary(n, BinaryKind::Mul, mean_c, a, temp(name, "mean_a"));
  const int cc = binary(n, BinaryKind::Sub, alias(n, bias, per_channel, temp(name, "bias")), ma,
                        temp(name, "c"));
  binary(n, BinaryKind::Add, binary(n, BinaryKind::Mul, x, a, temp(name, "xa")), cc, name);
}

}  // namespace hspec::planning
