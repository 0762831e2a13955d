// Host-side planning of a batched GEMM for cuBLASLt, in plain C++ so that CPU tests cover it: which
// operand becomes cuBLASLt's A and B, their transpose flags, column-major layouts (rows, cols, ld) and
// batch strides, which operands must be copied first, the batch folded into rows, compute and scale
// types, the epilogue, pointer alignments, and the key the heuristic cache is indexed by.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/tensor.hpp"

namespace ember::kernels::linalg_plan {

enum class Op : uint8_t { N, T };  // cuBLAS's CUBLAS_OP_N / CUBLAS_OP_T
enum class DataType : uint8_t { F32, F64, F16, BF16 };
enum class ComputeType : uint8_t { F32, F32FastTF32, F64 };  // CUBLAS_COMPUTE_32F, _32F_FAST_TF32, _64F
// CUBLASLT_EPILOGUE_DEFAULT, _BIAS, _GELU_BIAS, _GELU_AUX_BIAS (also writes the pre-GELU values to an aux
// buffer, see plan_aux), _BGRADA, _BGRADB (the bias pointer receives the sums of A's or B's entries over
// k: a bias gradient, computed in the GEMM of the weight gradient). In a Problem, BgradA / BgradB name
// Ember's a / b; in a Plan, cuBLASLt's A / B (plan_gemm swaps them with the operands).
enum class Epilogue : uint8_t { None, Bias, GeluBias, GeluAuxBias, BgradA, BgradB };

// cuBLASLt's batch count is an int32; chunks of at most this many matrices also stay within every
// kernel's grid.z limit.
inline constexpr int64_t kMaxBatchChunk = 65535;
inline constexpr int64_t kMaxAlignment = 16;  // bytes; the most CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_* asks

// One operand as Ember stores it: element (batch index..., r, c) of a [batch..., rows, cols] matrix
// stack lies at sum(idx_d * batch_strides[d]) + r * rs + c * cs (elements). address is its data
// pointer in bytes (alignment only; 0 counts as fully aligned).
struct Operand {
  std::vector<int64_t> batch_strides;
  int64_t rs = 0, cs = 0;
  uint64_t address = 0;
};

// out[..., M, N] = alpha * a[..., M, K] @ b[..., K, N] + beta * out (+ bias over N, then GELU).
struct Problem {
  std::vector<int64_t> batch;  // the shared batch shape
  int64_t m = 0, n = 0, k = 0;
  Operand a, b, c;
  DType dtype = kF32;
  bool allow_tf32 = false;  // float32_matmul_precision "high" or "medium"
  Epilogue epilogue = Epilogue::None;
};

// A column-major cuBLASLt matrix layout (CUBLASLT_ORDER_COL): element (r, c) at r + c * ld, matrix i
// of the batch at i * batch_stride.
struct Layout {
  int64_t rows = 0, cols = 0, ld = 1, batch_stride = 0;
};

struct Plan {
  bool lt_types = false;  // a cuBLASLt data type (float dtypes); integers take the reference kernel
  bool copy_a = false, copy_b = false, copy_c = false;  // made contiguous [batch, rows, cols] first, then replanned
  bool swap = false;            // cuBLASLt's A is Ember's b: row-major C = A B computed as column-major C^T = B^T A^T
  bool folded = false;          // b shared by the batch: a's and c's batches stacked into the rows of one GEMM
  int64_t m = 0, n = 0, k = 0;  // cuBLASLt's problem: D [m x n] = op(A) [m x k] @ op(B) [k x n]
  Op op_a = Op::N, op_b = Op::N;
  Layout la, lb, lc;  // cuBLASLt's A, B and C (= D: the output is written in place)
  int64_t batch = 1;  // matrices in the batch (after folding)
  int64_t chunk = 1;  // matrices per cuBLASLt call: min(batch, kMaxBatchChunk)
  DataType data = DataType::F32, scale = DataType::F32;
  ComputeType compute = ComputeType::F32;
  Epilogue epilogue = Epilogue::None;                 // bias indexed by D's row (= Ember's column n)
  const char* epilogue_refused = nullptr;             // why a requested epilogue was dropped (caller does it)
  uint32_t align_a = 16, align_b = 16, align_c = 16;  // bytes, of cuBLASLt's A, B, C pointers
  bool empty = false;                                 // nothing to compute (a zero-size output)
};

// The problem of gemm(out, a, b): out [batch..., M, N], a [batch..., M, K], b [batch..., K, N] (one batch
// shape, broadcast views allowed), strides and addresses as stored.
Problem make_problem(const Tensor& out, const Tensor& a, const Tensor& b, Epilogue e, bool allow_tf32);

// The plan of one problem. When a copy_* flag is set, the caller makes that operand contiguous and
// plans again; the second plan needs no copy.
Plan plan_gemm(const Problem& p);

// The batch dims collapsed into one stride for the whole flattened batch (row-major over `batch`), if
// the strides allow it; dims of size 1 are ignored, a broadcast operand collapses to stride 0.
bool collapse_batch(const std::vector<int64_t>& batch, const std::vector<int64_t>& strides, int64_t& stride);

// The column-major layout of a rows x cols matrix with element strides (rs, cs), if cuBLASLt can read
// it untransposed: ld >= max(1, rows), the strides of size-1 dims do not matter.
bool column_major(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int64_t& ld);

// Whether cuBLASLt's bias/GELU epilogues are used for a dtype (f32, f16, bf16); otherwise the caller adds
// the bias and applies GELU itself.
bool supports_epilogue(DType dt);

// Whether an epilogue sums an operand into the bias pointer (BGRADA / BGRADB) rather than adding a bias.
constexpr bool is_bgrad(Epilogue e) { return e == Epilogue::BgradA || e == Epilogue::BgradB; }

// The aux buffer of GELU_AUX_BIAS (CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER / _AUX_LD): the pre-GELU
// values laid out as D, column-major with leading dim ld. Ember hands it a fresh contiguous [M, N]
// tensor, which is D's layout (ld = D's rows = N) when D is row-major in Ember (plan.swap). cuBLASLt
// asks for ld % 8 == 0 and ld >= D's rows; one matrix (no aux batch stride); a 16-byte aligned pointer.
struct AuxPlan {
  bool ok = false;
  int64_t ld = 0;
  const char* reason = nullptr;  // why not, when !ok: the caller runs GEMM + bias, then GELU, itself
};
AuxPlan plan_aux(const Plan& p, uint64_t aux_address);

// Largest power of two <= kMaxAlignment dividing the address.
uint32_t alignment(uint64_t address);

// The problem cuBLASLt is given, for messages: "m=768 n=8192 k=3072 batch=1 bfloat16, A op N, B op T,
// epilogue gelu_aux_bias".
std::string describe(const Plan& p);

// The heuristic cache's key: everything cuBLASLt's algorithm choice depends on (device added by the caller).
using Key = std::array<int64_t, 24>;
Key cache_key(const Plan& p);

}  // namespace ember::kernels::linalg_plan
