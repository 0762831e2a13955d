// Host-side planning of cuBLASLt GEMMs (see linalg_plan.hpp). Compiled in every build so the CPU tests
// check the layouts cuBLASLt will be given; the CUDA launcher only turns a Plan into descriptors.
#include "kernels/linalg_plan.hpp"

#include <algorithm>
#include <sstream>

namespace ember::kernels::linalg_plan {
namespace {

// How an operand that should read as the logical R x C matrix with strides (rs, cs) is handed to
// cuBLASLt: untransposed when it is column-major, transposed when it is row-major, else not at all.
bool operand_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, Op& op, Layout& l) {
  int64_t ld = 1;
  if (column_major(rows, cols, rs, cs, ld)) {
    op = Op::N;
    l = {rows, cols, ld, 0};
    return true;
  }
  if (column_major(cols, rows, cs, rs, ld)) {
    op = Op::T;
    l = {cols, rows, ld, 0};
    return true;
  }
  return false;
}

bool any_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  Op op;
  Layout l;
  return operand_layout(rows, cols, rs, cs, op, l);
}

int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t x : v) p *= x;
  return p;
}

void set_types(Plan& plan, DType dt, bool allow_tf32) {
  plan.lt_types = is_floating(dt);
  plan.scale = DataType::F32;
  plan.compute = ComputeType::F32;
  switch (dt) {
    case DType::F64:
      plan.data = plan.scale = DataType::F64;
      plan.compute = ComputeType::F64;
      break;
    case DType::F16:
      plan.data = DataType::F16;
      break;  // f32 accumulation and scale
    case DType::BF16:
      plan.data = DataType::BF16;
      break;
    default:
      plan.data = DataType::F32;
      if (dt == DType::F32 && allow_tf32) plan.compute = ComputeType::F32FastTF32;
      break;
  }
}

// Batch stacked onto the rows: with b shared by every matrix (batch stride 0), matrix i's row r of a and
// c is row i * m + r of one tall matrix when each batch stride is m times the row stride.
bool fold_rows(int64_t m, int64_t batch_stride, int64_t rs, int64_t& folded_rs) {
  folded_rs = m > 1 ? rs : batch_stride;
  return batch_stride == m * folded_rs;
}

}  // namespace

bool collapse_batch(const std::vector<int64_t>& batch, const std::vector<int64_t>& strides, int64_t& stride) {
  stride = 0;
  int64_t inner = 1;  // matrices spanned by the dims already seen (innermost first)
  bool have = false;
  for (size_t d = batch.size(); d-- > 0;) {
    if (batch[d] == 1) continue;
    if (!have) {
      stride = strides[d];
      have = true;
    } else if (strides[d] != stride * inner) {
      return false;
    }
    inner *= batch[d];
  }
  return true;
}

bool column_major(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int64_t& ld) {
  if (rows > 1 && rs != 1) return false;
  const int64_t min_ld = std::max<int64_t>(1, rows);
  if (cols > 1) {
    if (cs < min_ld) return false;
    ld = cs;
  } else {
    ld = min_ld;
  }
  return true;
}

bool supports_epilogue(DType dt) { return dt == DType::F32 || dt == DType::F16 || dt == DType::BF16; }

uint32_t alignment(uint64_t address) {
  uint32_t a = static_cast<uint32_t>(kMaxAlignment);
  while (a > 1 && address % a != 0) a /= 2;
  return a;
}

Problem make_problem(const Tensor& out, const Tensor& a, const Tensor& b, Epilogue e, bool allow_tf32) {
  auto operand = [](const Tensor& t) {
    const int64_t nd = t.dim();
    Operand o;
    o.batch_strides.assign(t.strides().begin(), t.strides().end() - 2);
    o.rs = t.strides()[nd - 2];
    o.cs = t.strides()[nd - 1];
    o.address = reinterpret_cast<uint64_t>(t.raw_data());
    return o;
  };
  const int64_t nd = out.dim();
  Problem p;
  p.batch.assign(out.shape().begin(), out.shape().end() - 2);
  p.m = out.shape()[nd - 2], p.n = out.shape()[nd - 1], p.k = a.shape()[nd - 1];
  p.a = operand(a), p.b = operand(b), p.c = operand(out);
  p.dtype = out.dtype();
  p.allow_tf32 = allow_tf32;
  p.epilogue = e;
  return p;
}

Plan plan_gemm(const Problem& p) {
  Plan plan;
  set_types(plan, p.dtype, p.allow_tf32);
  const int64_t batch = product(p.batch);
  if (batch == 0 || p.m == 0 || p.n == 0) {
    plan.empty = true;
    return plan;
  }
  const char* refused = nullptr;
  if (p.epilogue != Epilogue::None && !supports_epilogue(p.dtype))
    refused = "cuBLASLt's epilogues take f32, f16 and bf16 only";
  else if ((is_bgrad(p.epilogue) || p.epilogue == Epilogue::GeluAuxBias) && batch > 1)
    refused = "bias-gradient and GELU-aux epilogues are planned for one matrix, not a batch";
  const bool want_epilogue = p.epilogue != Epilogue::None && refused == nullptr;
  plan.epilogue_refused = refused;
  int64_t sa = 0, sb = 0, sc = 0;
  plan.copy_a = !collapse_batch(p.batch, p.a.batch_strides, sa) || !any_layout(p.m, p.k, p.a.rs, p.a.cs);
  plan.copy_b = !collapse_batch(p.batch, p.b.batch_strides, sb) || !any_layout(p.k, p.n, p.b.rs, p.b.cs);
  int64_t ld = 1;
  const bool c_row_major = column_major(p.n, p.m, p.c.cs, p.c.rs, ld);
  const bool c_col_major = !want_epilogue && column_major(p.m, p.n, p.c.rs, p.c.cs, ld);
  plan.copy_c = !collapse_batch(p.batch, p.c.batch_strides, sc) || (!c_row_major && !c_col_major);
  if (plan.copy_a || plan.copy_b || plan.copy_c) return plan;

  int64_t m = p.m, a_rs = p.a.rs, c_rs = p.c.rs;
  plan.batch = batch;
  if (batch > 1 && sb == 0) {
    int64_t fa = 0, fc = 0;
    const int64_t rows = batch * p.m;
    if (fold_rows(p.m, sa, p.a.rs, fa) && fold_rows(p.m, sc, p.c.rs, fc) && any_layout(rows, p.k, fa, p.a.cs) &&
        column_major(p.n, rows, p.c.cs, fc, ld)) {
      plan.folded = true;
      m = rows, a_rs = fa, c_rs = fc;
      plan.batch = 1;
      sa = sc = 0;
    }
  }

  plan.k = p.k;
  if (column_major(p.n, m, p.c.cs, c_rs, ld)) {  // row-major C: C^T = B^T A^T, cuBLASLt's A is b
    plan.swap = true;
    plan.m = p.n, plan.n = m;
    plan.lc = {p.n, m, ld, sc};
    operand_layout(p.n, p.k, p.b.cs, p.b.rs, plan.op_a, plan.la);  // B^T: n x k
    operand_layout(p.k, m, p.a.cs, a_rs, plan.op_b, plan.lb);      // A^T: k x m
    plan.la.batch_stride = sb, plan.lb.batch_stride = sa;
    plan.align_a = alignment(p.b.address), plan.align_b = alignment(p.a.address);
  } else {  // column-major C (never with an epilogue: its bias runs along D's rows, Ember's columns)
    column_major(m, p.n, c_rs, p.c.cs, ld);
    plan.m = m, plan.n = p.n;
    plan.lc = {m, p.n, ld, sc};
    operand_layout(m, p.k, a_rs, p.a.cs, plan.op_a, plan.la);
    operand_layout(p.k, p.n, p.b.rs, p.b.cs, plan.op_b, plan.lb);
    plan.la.batch_stride = sa, plan.lb.batch_stride = sb;
    plan.align_a = alignment(p.a.address), plan.align_b = alignment(p.b.address);
  }
  plan.align_c = alignment(p.c.address);
  plan.chunk = std::min(plan.batch, kMaxBatchChunk);
  plan.epilogue = want_epilogue ? p.epilogue : Epilogue::None;
  // Ember's b is cuBLASLt's A when swapped: its sums over k follow it (D's rows are then Ember's columns).
  if (plan.swap && is_bgrad(plan.epilogue))
    plan.epilogue = plan.epilogue == Epilogue::BgradA ? Epilogue::BgradB : Epilogue::BgradA;
  // cuBLASLt's bias-gradient epilogues take only these transposes (a one-row gradient, k = 1, or a
  // strided one can give the others): the caller sums the bias gradient itself.
  if ((plan.epilogue == Epilogue::BgradA && plan.op_a != Op::N) ||
      (plan.epilogue == Epilogue::BgradB && plan.op_b != Op::T)) {
    plan.epilogue = Epilogue::None;
    plan.epilogue_refused = "cuBLASLt's BGRADA takes op(A) = N only, its BGRADB op(B) = T only";
  }
  return plan;
}

AuxPlan plan_aux(const Plan& p, uint64_t aux_address) {
  AuxPlan a;
  if (p.epilogue != Epilogue::GeluAuxBias)
    a.reason = p.epilogue_refused != nullptr ? p.epilogue_refused : "the plan has no GELU_AUX_BIAS epilogue";
  else if (!p.swap)
    a.reason = "the output is not row-major, so a contiguous aux tensor is not laid out as D";
  else if (p.batch != 1)
    a.reason = "a batch of matrices needs an aux batch stride";
  else if (p.m % 8 != 0)
    a.reason = "the aux leading dim (the output's columns) is not a multiple of 8";
  else if (alignment(aux_address) < 16)
    a.reason = "the aux pointer is not 16-byte aligned";
  else
    a.ok = true, a.ld = p.m;
  return a;
}

std::string describe(const Plan& p) {
  static constexpr const char* kData[] = {"float32", "float64", "float16", "bfloat16"};
  static constexpr const char* kEpilogue[] = {"none", "bias", "gelu_bias", "gelu_aux_bias", "bgrada", "bgradb"};
  auto op = [](Op o) { return o == Op::N ? "N" : "T"; };
  std::ostringstream os;
  os << "m=" << p.m << " n=" << p.n << " k=" << p.k << " batch=" << p.batch << " " << kData[int(p.data)] << ", A op "
     << op(p.op_a) << ", B op " << op(p.op_b) << ", epilogue " << kEpilogue[int(p.epilogue)];
  return os.str();
}

Key cache_key(const Plan& p) {
  return {p.m,
          p.n,
          p.k,
          static_cast<int64_t>(p.op_a),
          static_cast<int64_t>(p.op_b),
          p.la.rows,
          p.la.cols,
          p.la.ld,
          p.la.batch_stride,
          p.lb.rows,
          p.lb.cols,
          p.lb.ld,
          p.lb.batch_stride,
          p.lc.rows,
          p.lc.cols,
          p.lc.ld,
          p.lc.batch_stride,
          p.chunk,
          static_cast<int64_t>(p.data),
          static_cast<int64_t>(p.compute),
          static_cast<int64_t>(p.scale),
          static_cast<int64_t>(p.epilogue),
          int64_t{p.align_a} | int64_t{p.align_b} << 8 | int64_t{p.align_c} << 16,
          0};
}

}  // namespace ember::kernels::linalg_plan
