// The execution plan of a Graph: every value's per-sample shape and class, and the ops
// lowered to a small set of step kinds whose rules (forward, vector-Jacobian, R-forward,
// R-backward) the graph engine implements once against the compute seam.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "hspec/graph/compute.hpp"
#include "hspec/graph/graph.hpp"

namespace hspec {

// Constant: no parameter or data upstream. Param: depends on parameters only (one value for
// all samples). Data: depends on the input (one value per sample).
enum class ValueClass { Constant, Param, Data };

// Where a Data value's samples sit in the ONNX (logical) value: logical axis `axis` holds
// outer x samples x inner, the samples minor under `outer` and major over `inner` (both
// per-sample extents merged into that axis, e.g. an exporter's [N H, T, d] or [T N, E]).
// The buffers stay [samples, per-sample axes...]: the physical per-sample shape is the
// logical shape with `axis` replaced by outer and inner (each only when above 1), so the
// per-sample factors keep their logical order and every step kernel is unchanged.
struct SampleLayout {
  int64_t axis = 0, outer = 1, inner = 1;
  bool standard() const { return axis == 0 && outer == 1 && inner == 1; }
  // How many physical axes stand for the logical sample axis (besides the samples).
  int64_t factors() const { return (outer > 1 ? 1 : 0) + (inner > 1 ? 1 : 0); }
  bool operator==(const SampleLayout& o) const {
    return axis == o.axis && outer == o.outer && inner == o.inner;
  }
  bool operator!=(const SampleLayout& o) const { return !(*this == o); }
};

struct PlanValue {
  std::string name;
  ValueClass cls = ValueClass::Constant;
  // Data: the shape of one sample (the sample axis excluded); otherwise the full shape.
  Shape shape;
  std::vector<double> host;  // Constant and parameter values (row-major), else empty
  int param_index = -1;      // index into Plan::params when this is a parameter
  int storage = -1;          // the value whose buffers this one shares (itself unless an alias)
  bool diff = false;         // depends on the parameters: has a tangent and an adjoint
  // Data only: where the ONNX value holds its samples (see SampleLayout); `shape` is the
  // physical per-sample shape, which keeps the samples first whatever the logical layout.
  SampleLayout samples;
  bool is_int = false;  // integer token ids (the input, or an alias of it): no float data
  int64_t numel() const { return shape_numel(shape); }
  bool batched() const { return cls == ValueClass::Data; }
  // Data whose samples are not alone on axis 0 of the ONNX value.
  bool moved() const { return batched() && !samples.standard(); }
};

enum class StepKind {
  Linear,      // y[rows, out] = alpha x[rows, in] op(w) (+ bias[out]), x Data, w Param/Constant
  MatMulData,  // y = a b per sample and batch index, a and b both Data
  Conv,        // 2-D convolution (channel groups), without bias (lowered to an Add)
  Unary,       // elementwise function
  Binary,      // numpy-broadcast Add/Sub/Mul/Div (Div by a Constant only)
  MaxPool,     // argmax fixed by the primal pass
  AvgPool,     // AveragePool (count_include_pad as ONNX)
  ReduceMean,  // mean over per-sample axes (keepdims shape in reduce_shape)
  Softmax,     // softmax over one axis (a_shape the input, out_shape it reduced)
  Layout,      // Transpose / Slice / Concat: strided copies (Split is one Slice per output)
  Gather,      // rows picked by index: by the data's token ids, or by constant indices
  Alias        // Reshape/Flatten/Squeeze/Unsqueeze/Identity: same data, new shape
};

enum class LayoutKind { Transpose, Slice, Concat };

struct PlanStep {
  StepKind kind = StepKind::Alias;
  std::string op, node;  // the ONNX op and node name it came from, for messages
  std::vector<int> in;   // value ids (constants included)
  int out = -1;
  // Linear: rows_per_sample x in_dim times op(w) [in_dim, out_dim]; w stored [out, in] when
  // trans_w (Gemm transB=1), else [in, out]. A third input, when present, is a bias [out]
  // (Gemm's C) added to every row.
  double alpha = 1;
  bool trans_w = false;
  int64_t rows_per_sample = 1, in_dim = 0, out_dim = 0;
  int64_t matmuls_per_sample = 1;  // MatMulData: product of the leading per-sample axes
  // Conv / pools.
  WindowGeom geom;
  int64_t out_channels = 0;
  int64_t conv_groups = 1;  // Conv: channel groups (1 = dense)
  bool count_include_pad = false;
  UnaryKind unary = UnaryKind::Relu;
  BinaryKind binary = BinaryKind::Add;
  // Binary: operand and output shapes aligned to one rank, axis 0 the sample axis (extent 1
  // for a non-Data operand or output). ReduceMean: input and keepdims output shapes, same form.
  Shape a_shape, b_shape, out_shape;
  int64_t reduce_count = 1;
  // Softmax and Concat: the axis of the step shapes (axis 0 the sample axis).
  int64_t axis = 0;
  // Layout, over step shapes: Transpose's perm (out axis i is in axis perm[i]); Slice's
  // per-axis first index and step (out[i] = in[start + i step]); Concat's input shapes.
  LayoutKind layout = LayoutKind::Transpose;
  std::vector<int64_t> perm, starts, steps;
  std::vector<Shape> in_shapes;
  // Gather: out[o, i, :] = x[o, idx[i], :] over `gather_outer` blocks (per copy of x) of
  // `gather_axis` rows of `gather_inner` elements. With gather_ids the indices are the
  // chunk's token ids (x the table, one block, n * gather_count indices); else the
  // constant `gather_index` (normalised, in range).
  bool gather_ids = false;
  int64_t gather_outer = 1, gather_axis = 0, gather_inner = 1, gather_count = 0;
  std::vector<int64_t> gather_index;
};

struct Plan {
  std::string source;
  // A deque: the planner holds references to values while it appends new ones, and a
  // deque's push_back keeps them valid (a vector's reallocation left them dangling twice).
  std::deque<PlanValue> values;
  std::vector<PlanStep> steps;
  int input = -1, output = -1;
  std::vector<int> params;            // value ids of the parameters, in flat order
  std::vector<int64_t> param_offset;  // offset of each in the flat vector
  int64_t num_params = 0;
  int64_t output_dim = 0;  // per-sample elements of the output
  // Integer (token id) input: ids must lie in [0, id_limit), the rows of the smallest table
  // they index (named by id_table), checked once when the data are loaded.
  bool input_is_int = false;
  int64_t id_limit = 0;
  std::string id_table;
  // Per-sample element counts for memory planning: all Data values, and the largest
  // per-sample workspace a step needs (im2col columns, broadcast temporaries).
  int64_t data_elems_per_sample = 0;
  int64_t workspace_per_sample = 0;
  int64_t argmax_per_sample = 0;
  int64_t param_value_elems = 0;  // all Param-class values together
};

// Infers shapes and classes and lowers the graph; InputError naming the node, the op and
// graph.source for anything outside the supported set or inconsistent.
Plan make_plan(const Graph& g);

// Writes the flat parameter vector `theta` (the order of Plan::params) into the plan's
// parameter values; InputError when its length is not num_params. (Non-finite values are
// not checked here: an operator's primal pass reports them as a non-finite loss.)
void set_parameters(Plan& plan, const std::vector<double>& theta);

}  // namespace hspec
