// Tensor's op methods: each forwards to the free function of its family (core/ops/*.hpp).
#include "ember.hpp"

namespace ember {

std::vector<Tensor> Tensor::split(int64_t s, int64_t d) const { return ember::split(*this, s, d); }
std::vector<Tensor> Tensor::split(const std::vector<int64_t>& s, int64_t d) const { return ember::split(*this, s, d); }
std::vector<Tensor> Tensor::chunk(int64_t c, int64_t d) const { return ember::chunk(*this, c, d); }
Tensor Tensor::flip(const Shape& dims) const { return ember::flip(*this, dims); }
Tensor Tensor::repeat(const Shape& r) const { return ember::repeat(*this, r); }

Tensor Tensor::index_select(int64_t d, const Tensor& i) const { return ember::index_select(*this, d, i); }
Tensor Tensor::gather(int64_t d, const Tensor& i) const { return ember::gather(*this, d, i); }
Tensor Tensor::scatter(int64_t d, const Tensor& i, const Tensor& s) const { return ember::scatter(*this, d, i, s); }
Tensor Tensor::scatter(int64_t d, const Tensor& i, const Scalar& v) const { return ember::scatter(*this, d, i, v); }
Tensor Tensor::scatter_add(int64_t d, const Tensor& i, const Tensor& s) const {
  return ember::scatter_add(*this, d, i, s);
}
Tensor Tensor::index_add(int64_t d, const Tensor& i, const Tensor& s, const Scalar& a) const {
  return ember::index_add(*this, d, i, s, a);
}
Tensor Tensor::masked_fill(const Tensor& m, const Scalar& v) const { return ember::masked_fill(*this, m, v); }
Tensor& Tensor::masked_fill_(const Tensor& m, const Scalar& v) { return copy_(ember::masked_fill(*this, m, v)); }
Tensor Tensor::masked_select(const Tensor& m) const { return ember::masked_select(*this, m); }
Tensor Tensor::take_along_dim(const Tensor& i, int64_t d) const { return ember::take_along_dim(*this, i, d); }

Tensor Tensor::neg() const { return ember::neg(*this); }
Tensor Tensor::abs() const { return ember::abs(*this); }
Tensor Tensor::sign() const { return ember::sign(*this); }
Tensor Tensor::exp() const { return ember::exp(*this); }
Tensor Tensor::exp2() const { return ember::exp2(*this); }
Tensor Tensor::log() const { return ember::log(*this); }
Tensor Tensor::log2() const { return ember::log2(*this); }
Tensor Tensor::log1p() const { return ember::log1p(*this); }
Tensor Tensor::expm1() const { return ember::expm1(*this); }
Tensor Tensor::sqrt() const { return ember::sqrt(*this); }
Tensor Tensor::rsqrt() const { return ember::rsqrt(*this); }
Tensor Tensor::reciprocal() const { return ember::reciprocal(*this); }
Tensor Tensor::sin() const { return ember::sin(*this); }
Tensor Tensor::cos() const { return ember::cos(*this); }
Tensor Tensor::tan() const { return ember::tan(*this); }
Tensor Tensor::tanh() const { return ember::tanh(*this); }
Tensor Tensor::sigmoid() const { return ember::sigmoid(*this); }
Tensor Tensor::relu() const { return ember::relu(*this); }
Tensor Tensor::gelu(const std::string& a) const { return ember::gelu(*this, a); }
Tensor Tensor::silu() const { return ember::silu(*this); }
Tensor Tensor::softplus(double b, double t) const { return ember::softplus(*this, b, t); }
Tensor Tensor::erf() const { return ember::erf(*this); }
Tensor Tensor::floor() const { return ember::floor(*this); }
Tensor Tensor::ceil() const { return ember::ceil(*this); }
Tensor Tensor::round() const { return ember::round(*this); }
Tensor Tensor::trunc() const { return ember::trunc(*this); }
Tensor Tensor::logical_not() const { return ember::logical_not(*this); }
Tensor Tensor::isnan() const { return ember::isnan(*this); }
Tensor Tensor::isinf() const { return ember::isinf(*this); }
Tensor Tensor::isfinite() const { return ember::isfinite(*this); }
Tensor Tensor::clamp(std::optional<Scalar> lo, std::optional<Scalar> hi) const { return ember::clamp(*this, lo, hi); }
Tensor Tensor::clamp(const Tensor& lo, const Tensor& hi) const { return ember::clamp(*this, lo, hi); }
Tensor Tensor::nan_to_num(double n, std::optional<double> p, std::optional<double> m) const {
  return ember::nan_to_num(*this, n, p, m);
}
Tensor Tensor::pow(const Scalar& e) const { return ember::pow(*this, e); }
Tensor Tensor::pow(const Tensor& e) const { return ember::pow(*this, e); }
Tensor Tensor::add(const Tensor& o, const Scalar& a) const { return ember::add(*this, o, a); }
Tensor Tensor::sub(const Tensor& o, const Scalar& a) const { return ember::sub(*this, o, a); }
Tensor Tensor::mul(const Tensor& o) const { return ember::mul(*this, o); }
Tensor Tensor::div(const Tensor& o, const std::string& m) const { return ember::div(*this, o, m); }
Tensor Tensor::remainder(const Tensor& o) const { return ember::remainder(*this, o); }
Tensor Tensor::fmod(const Tensor& o) const { return ember::fmod(*this, o); }
Tensor Tensor::fmod(const Scalar& o) const { return ember::fmod(*this, o); }
Tensor Tensor::atan2(const Tensor& o) const { return ember::atan2(*this, o); }
Tensor Tensor::clamp_min(const Scalar& m) const { return ember::clamp_min(*this, m); }
Tensor Tensor::clamp_max(const Scalar& m) const { return ember::clamp_max(*this, m); }
std::vector<Tensor> Tensor::unbind(int64_t d) const { return ember::unbind(*this, d); }
Tensor Tensor::tril(int64_t k) const { return ember::tril(*this, k); }
Tensor Tensor::triu(int64_t k) const { return ember::triu(*this, k); }
Tensor Tensor::maximum(const Tensor& o) const { return ember::maximum(*this, o); }
Tensor Tensor::minimum(const Tensor& o) const { return ember::minimum(*this, o); }
Tensor Tensor::eq(const Tensor& o) const { return ember::eq(*this, o); }
Tensor Tensor::ne(const Tensor& o) const { return ember::ne(*this, o); }
Tensor Tensor::lt(const Tensor& o) const { return ember::lt(*this, o); }
Tensor Tensor::le(const Tensor& o) const { return ember::le(*this, o); }
Tensor Tensor::gt(const Tensor& o) const { return ember::gt(*this, o); }
Tensor Tensor::ge(const Tensor& o) const { return ember::ge(*this, o); }
Tensor Tensor::logical_and(const Tensor& o) const { return ember::logical_and(*this, o); }
Tensor Tensor::logical_or(const Tensor& o) const { return ember::logical_or(*this, o); }
Tensor Tensor::logical_xor(const Tensor& o) const { return ember::logical_xor(*this, o); }
Tensor Tensor::lerp(const Tensor& e, const Scalar& w) const { return ember::lerp(*this, e, w); }
Tensor Tensor::lerp(const Tensor& e, const Tensor& w) const { return ember::lerp(*this, e, w); }
Tensor Tensor::addcmul(const Tensor& a, const Tensor& b, const Scalar& v) const {
  return ember::addcmul(*this, a, b, v);
}
Tensor Tensor::addcdiv(const Tensor& a, const Tensor& b, const Scalar& v) const {
  return ember::addcdiv(*this, a, b, v);
}

Tensor Tensor::sum(std::optional<DType> dt) const { return ember::sum(*this, {}, false, dt); }
Tensor Tensor::sum(const Dims& d, bool k, std::optional<DType> dt) const { return ember::sum(*this, d, k, dt); }
Tensor Tensor::mean() const { return ember::mean(*this); }
Tensor Tensor::mean(const Dims& d, bool k) const { return ember::mean(*this, d, k); }
Tensor Tensor::prod() const { return ember::prod(*this); }
Tensor Tensor::prod(int64_t d, bool k) const { return ember::prod(*this, {d}, k); }
Tensor Tensor::var(const Dims& d, int64_t c, bool k) const { return ember::var(*this, d, c, k); }
Tensor Tensor::std(const Dims& d, int64_t c, bool k) const { return ember::std(*this, d, c, k); }
Tensor Tensor::max() const { return ember::max(*this); }
Tensor Tensor::min() const { return ember::min(*this); }
ValuesIndices Tensor::max(int64_t d, bool k) const { return ember::max(*this, d, k); }
ValuesIndices Tensor::min(int64_t d, bool k) const { return ember::min(*this, d, k); }
Tensor Tensor::amax(const Dims& d, bool k) const { return ember::amax(*this, d, k); }
Tensor Tensor::amin(const Dims& d, bool k) const { return ember::amin(*this, d, k); }
Tensor Tensor::argmax(std::optional<int64_t> d, bool k) const { return ember::argmax(*this, d, k); }
Tensor Tensor::argmin(std::optional<int64_t> d, bool k) const { return ember::argmin(*this, d, k); }
Tensor Tensor::norm(double p) const { return ember::norm(*this, p); }
Tensor Tensor::norm(double p, const Dims& d, bool k) const { return ember::norm(*this, p, d, k); }
Tensor Tensor::logsumexp(const Dims& d, bool k) const { return ember::logsumexp(*this, d, k); }
Tensor Tensor::all() const { return ember::all(*this); }
Tensor Tensor::all(int64_t d, bool k) const { return ember::all(*this, {d}, k); }
Tensor Tensor::any() const { return ember::any(*this); }
Tensor Tensor::any(int64_t d, bool k) const { return ember::any(*this, {d}, k); }
Tensor Tensor::cumsum(int64_t d) const { return ember::cumsum(*this, d); }
Tensor Tensor::cumprod(int64_t d) const { return ember::cumprod(*this, d); }
ValuesIndices Tensor::topk(int64_t k, int64_t d, bool l, bool s) const { return ember::topk(*this, k, d, l, s); }
ValuesIndices Tensor::sort(int64_t d, bool desc, bool st) const { return ember::sort(*this, d, desc, st); }
Tensor Tensor::argsort(int64_t d, bool desc, bool st) const { return ember::argsort(*this, d, desc, st); }

Tensor Tensor::matmul(const Tensor& o) const { return ember::matmul(*this, o); }
Tensor Tensor::mm(const Tensor& o) const { return ember::mm(*this, o); }
Tensor Tensor::bmm(const Tensor& o) const { return ember::bmm(*this, o); }
Tensor Tensor::dot(const Tensor& o) const { return ember::dot(*this, o); }
Tensor Tensor::softmax(int64_t d) const { return ember::softmax(*this, d); }
Tensor Tensor::log_softmax(int64_t d) const { return ember::log_softmax(*this, d); }

}  // namespace ember
