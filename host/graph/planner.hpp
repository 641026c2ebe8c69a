// The planner's state while it lowers a Graph (shared by the plan_*.cpp files).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "hspec/error.hpp"
#include "hspec/graph/plan.hpp"

namespace hspec::planning {

// Ops that only give their input a new shape (lowered to Alias steps).
inline bool is_shape_op(const std::string& op) {
  return op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" ||
         op == "Identity" || op == "Dropout";
}

class Planner {
 public:
  explicit Planner(const Graph& g) : g_(g) { plan_.source = g.source; }
  Plan run();

  // ---- helpers for the op lowerings ----
  [[noreturn]] void fail(const GraphNode& n, const std::string& msg) const {
    throw InputError(g_.source + ": node '" + n.name + "' (" + n.op + "): " + msg);
  }
  const PlanValue& value(int id) const { return plan_.values[size_t(id)]; }
  // The id of a float value input; InputError when missing or an integer constant.
  int input(const GraphNode& n, size_t i) const;
  bool has_input(const GraphNode& n, size_t i) const {
    return i < n.inputs.size() && !n.inputs[i].empty();
  }
  // An integer constant input (Reshape's shape, axes), or nullptr when absent.
  const GraphTensor* int_input(const GraphNode& n, size_t i) const;
  int64_t attr_int(const GraphNode& n, const char* key, int64_t dflt) const;
  double attr_float(const GraphNode& n, const char* key, double dflt) const;
  std::string attr_string(const GraphNode& n, const char* key, const std::string& dflt) const;
  std::vector<int64_t> attr_ints(const GraphNode& n, const char* key,
                                 const std::vector<int64_t>& dflt) const;

  int add_value(const std::string& name, ValueClass cls, Shape shape,
                std::vector<double> host = {});
  int add_constant(const std::string& name, Shape shape, std::vector<double> host) {
    return add_value(name, ValueClass::Constant, std::move(shape), std::move(host));
  }
  // A fresh internal name derived from a node output.
  std::string temp(const std::string& base, const char* what) { return base + "/" + what; }
  void add_step(PlanStep s) { plan_.steps.push_back(std::move(s)); }
  PlanStep step(const GraphNode& n, StepKind kind) const {
    PlanStep s;
    s.kind = kind;
    s.op = n.op;
    s.node = n.name;
    return s;
  }
  ValueClass join(ValueClass a, ValueClass b) const { return a > b ? a : b; }
  bool moved(int id) const { return value(id).moved(); }
  void set_layout(int id, const SampleLayout& l) { plan_.values[size_t(id)].samples = l; }

  // ---- sample layouts (plan_samples.cpp; see SampleLayout in plan.hpp) ----
  // The logical (ONNX) shape: for Data the per-sample extents, the sample axis holding
  // outer x inner (1 for the standard layout); otherwise the value's shape.
  static Shape logical_shape(const PlanValue& v);
  // The physical per-sample shape of Data of logical shape `logical` under layout l.
  static Shape physical_shape(const Shape& logical, const SampleLayout& l);
  // The step shape ([1] + physical) of an operand of logical shape `logical` aligned to
  // data of layout l: a non-Data operand (data = false) has extent 1 on the sample axis,
  // which becomes as many axes of extent 1 as the data have factors there.
  static Shape step_shape(const Shape& logical, const SampleLayout& l, bool data);
  // The step axes standing for logical axis a of a Data value (for the sample axis: its
  // outer and inner factors, possibly none), in order.
  static std::vector<int64_t> step_axes_of(const PlanValue& v, int64_t a);
  // Axes checked against rank, wrapped, sorted and without repeats.
  std::vector<int64_t> logical_axes(const GraphNode& n, std::vector<int64_t> axes,
                                    int64_t rank) const;
  // The step axis of logical axis a (normalised) of v; InputError when a holds the samples.
  int64_t step_axis(const GraphNode& n, const PlanValue& v, int64_t a) const;
  // Where the samples sit, for messages ("axis 1, merged with 2 per-sample rows after them").
  static std::string describe(const SampleLayout& l);
  // Reshape of Data: the target's logical extents regrouped in order around the samples,
  // which sit on target axis q; returns the output's layout and fills `out` (the logical
  // per-sample shape). InputError when the regrouping would split the samples' factor.
  SampleLayout regroup(const GraphNode& n, const PlanValue& v, std::vector<int64_t> target,
                       size_t q, Shape& out) const;

  // Builders shared by several ops; each returns the output value id.
  int binary(const GraphNode& n, BinaryKind kind, int a, int b, const std::string& out);
  // Same data, new physical shape; the layout is the source's unless given.
  int alias(const GraphNode& n, int src, Shape shape, const std::string& out);
  int alias(const GraphNode& n, int src, Shape shape, const std::string& out,
            const SampleLayout& layout);
  int reduce_mean(const GraphNode& n, int src, std::vector<int64_t> axes, bool keepdims,
                  const std::string& out);
  int unary(const GraphNode& n, UnaryKind f, int x, const std::string& out);
  // Slice step shapes (sample axis first): out[i] = x[starts + i steps].
  int slice(const GraphNode& n, int x, const std::vector<int64_t>& starts,
            const std::vector<int64_t>& steps, const Shape& out_step_shape, const std::string& out);
  // A constant scalar input (float or integer), e.g. Pow's exponent.
  double scalar_input(const GraphNode& n, size_t i) const;
  Shape broadcast_shape(const GraphNode& n, Shape a, Shape b) const;
  // v (shape s) broadcast on the host to `out` (numpy rules; s no longer than out).
  std::vector<double> broadcast_host(const std::vector<double>& v, Shape s, const Shape& out) const;
  // Logical axes normalised (checked, sorted) and mapped to step axes for Data (the sample
  // axis first; InputError for the axis holding the samples), left as they are otherwise.
  std::vector<int64_t> normalize_axes(const GraphNode& n, const PlanValue& v,
                                      std::vector<int64_t> axes, int64_t rank) const;

  // ---- the op lowerings (plan_ops_*.cpp) ----
  void lower_gemm(const GraphNode& n);
  void lower_matmul(const GraphNode& n);
  void lower_conv(const GraphNode& n);
  void lower_batchnorm(const GraphNode& n);
  void lower_pool(const GraphNode& n);
  void lower_shape(const GraphNode& n);
  void lower_reduce(const GraphNode& n);
  // plan_transformer.cpp and plan_layout.cpp
  void lower_pow(const GraphNode& n);  // Pow, Sqrt
  void lower_div(const GraphNode& n);
  void lower_layernorm(const GraphNode& n);
  void lower_softmax(const GraphNode& n);
  void lower_where(const GraphNode& n);
  void lower_expand(const GraphNode& n);
  void lower_cast(const GraphNode& n);
  // Values expanded over the samples (see lower_expand): refuses the ops that would not
  // broadcast them like the expanded tensor, and marks the results that still stand for one.
  void check_over_samples(const GraphNode& n);
  void propagate_over_samples(const GraphNode& n);
  void lower_transpose(const GraphNode& n);
  void lower_slice(const GraphNode& n);
  void lower_split(const GraphNode& n);
  void lower_concat(const GraphNode& n);
  void lower_gather(const GraphNode& n);

 private:
  void lower(const GraphNode& n);
  const Graph& g_;
  Plan plan_;
  std::map<std::string, int> ids_;
  std::map<std::string, const GraphTensor*> int_consts_;
  // Outputs the engine does not compute (LayerNormalization's Mean and InvStdDev): what
  // they are, for the error when a node reads one.
  std::map<std::string, std::string> absent_;
  // Parameter or constant values of extent 1 on axis 0 that stand for a tensor expanded over
  // the samples, with the Expand node that made them.
  std::map<int, std::string> over_samples_;
};

}  // namespace hspec::planning
