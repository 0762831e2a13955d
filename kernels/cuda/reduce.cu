// CUDA reductions over dim sets: sum, mean, prod, max, min, the norms, all/any, variance and
// logsumexp, on the engine of reduce_engine.cuh. Why one engine: every kind is a monoid over element
// terms, so the kinds differ only in the op struct, and the accumulation and result types follow the
// CPU's choices (kernels/cpu/reduce.cpp) kind for kind: float sums in double, f16/bf16 in f32, integer
// sums and products in i64.
#include <type_traits>

#include "kernels/cuda/reduce_engine.cuh"
#include "kernels/elementwise.hpp"
#include "kernels/reduce.hpp"

namespace ember::kernels::cuda {

int sm_count(int dev) {
  static int cached[64] = {};
  if (dev < 0 || dev >= 64) return 132;
  if (cached[dev] == 0) {
    int v = 0;
    EMBER_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    cached[dev] = v > 0 ? v : 1;
  }
  return cached[dev];
}

namespace {

template <class In, class State, class Out, class Mon, class Term, class Fin>
void run_monoid(const ReducePlan& p, const Tensor& out, const Tensor& in, Term term, Fin fin,
                const typename Term::Center* centre = nullptr) {
  MonoidOp<In, State, Out, Mon, Term, Fin> op{dptr<const char>(in), dptr<Out>(out), term, fin, centre};  // checks Out
  launch_reduce(p, op, in.device());
}

}  // namespace

void reduce(ReduceKind kind, const Tensor& out, const Tensor& in, const ReduceParams& prm) {
  const ReducePlan plan = make_reduce_plan(out, in);
  visit_dtype<AllTypes>(in.dtype(), "[reduce]", [&]<class T>() {
    using A = acc_t<T>;
    constexpr bool kFloat = std::is_floating_point_v<A>;
    switch (kind) {
      case ReduceKind::Sum:
      case ReduceKind::Mean:
        if constexpr (kFloat) {
          const double scale = kind == ReduceKind::Mean ? 1.0 / static_cast<double>(plan.N) : 1.0;
          run_monoid<T, double, T, AddM>(plan, out, in, IdentTerm<A>{}, ScaleFin{scale});
        } else {
          run_monoid<T, int64_t, int64_t, AddM>(plan, out, in, IdentTerm<int64_t>{}, PlainFin{});
        }
        return;
      case ReduceKind::Prod:
        if constexpr (kFloat)
          run_monoid<T, A, T, MulM>(plan, out, in, IdentTerm<A>{}, PlainFin{});
        else
          run_monoid<T, int64_t, int64_t, MulM>(plan, out, in, IdentTerm<int64_t>{}, PlainFin{});
        return;
      case ReduceKind::Max:
        return run_monoid<T, A, T, MaxM>(plan, out, in, IdentTerm<A>{}, PlainFin{});
      case ReduceKind::Min:
        return run_monoid<T, A, T, MinM>(plan, out, in, IdentTerm<A>{}, PlainFin{});
      case ReduceKind::All:
        return run_monoid<T, bool, bool, AndM>(plan, out, in, NonZeroTerm<bool>{}, PlainFin{});
      case ReduceKind::Any:
        return run_monoid<T, bool, bool, OrM>(plan, out, in, NonZeroTerm<bool>{}, PlainFin{});
      default:
        break;
    }
    if constexpr (kFloat) {
      switch (kind) {
        case ReduceKind::NormL0:
          return run_monoid<T, double, T, AddM>(plan, out, in, NonZeroTerm<A>{}, PlainFin{});
        case ReduceKind::NormL1:
          return run_monoid<T, double, T, AddM>(plan, out, in, AbsTerm{}, PlainFin{});
        case ReduceKind::NormL2:
          return run_monoid<T, double, T, AddM>(plan, out, in, SquareTerm{}, SqrtFin{1.0});
        case ReduceKind::NormInf:
          return run_monoid<T, A, T, MaxM>(plan, out, in, AbsTerm{}, PlainFin{});
        case ReduceKind::NormNegInf:
          return run_monoid<T, A, T, MinM>(plan, out, in, AbsTerm{}, PlainFin{});
        case ReduceKind::NormP:
          return run_monoid<T, double, T, AddM>(plan, out, in, PowAbsTerm<A>{static_cast<A>(prm.p)},
                                                RootFin{1.0 / prm.p});
        default:
          break;
      }
    }
    throw_unsupported_dtype(in.dtype(), "[norm]");
  });
}

void var_mean(const Tensor& var, const Tensor& mean, const Tensor& in, int64_t correction, bool take_sqrt) {
  EMBER_CHECK(var.is_contiguous(), ValueError, "[var] the output must be contiguous, got ", describe(var));
  const ReducePlan plan = make_reduce_plan(var, in);
  visit_dtype<FloatTypes>(in.dtype(), "[var]", [&]<class T>() {
    // Pass 1: the mean in double; pass 2: squared deviations from it, in double (as the CPU).
    Tensor centre = make_tensor(var.shape(), kF64, in.device());
    const double n = static_cast<double>(plan.N);
    run_monoid<T, double, double, AddM>(plan, centre, in, IdentTerm<acc_t<T>>{}, ScaleFin{1.0 / n});
    const double divisor = n - static_cast<double>(correction) > 0 ? n - static_cast<double>(correction) : 0.0;
    run_monoid<T, double, T, AddM>(plan, var, in, SqDevTerm{}, VarFin{1.0 / divisor, take_sqrt},
                                   dptr<const double>(centre));
    if (mean.defined()) kernels::copy(mean, centre);
  });
}

void logsumexp(const Tensor& out, const Tensor& in) {
  EMBER_CHECK(out.is_contiguous(), ValueError, "[logsumexp] the output must be contiguous, got ", describe(out));
  const ReducePlan plan = make_reduce_plan(out, in);
  visit_dtype<FloatTypes>(in.dtype(), "[logsumexp]", [&]<class T>() {
    using A = acc_t<T>;
    Tensor shift = make_tensor(out.shape(), dtype_of<A>(), in.device());
    run_monoid<T, A, A, MaxM>(plan, shift, in, IdentTerm<A>{}, PlainFin{});
    // The shift's infinities become 0 inside the terms (lse_shift), as the CPU's fix-up loop.
    run_monoid<T, double, T, AddM>(plan, out, in, ExpShiftTerm<A>{}, LogShiftFin{}, dptr<const A>(shift));
  });
}

}  // namespace ember::kernels::cuda
