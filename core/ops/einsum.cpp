// einsum: parse the equation into label ids, bring every operand to one "full" layout (a dim per label
// of the whole equation, size 1 where the operand lacks it; diagonals taken with as_strided), then
// contract left to right: labels no later operand or the output needs are summed early, shared ones
// become one bmm (or a broadcast multiply when nothing is contracted).
#include "core/ops/einsum.hpp"

#include <algorithm>
#include <cctype>
#include <string>

#include "core/ops/elementwise.hpp"
#include "core/ops/linalg.hpp"
#include "core/ops/reduce.hpp"

namespace ember {
namespace {

constexpr int kLetters = 52;  // ids 0-25 'A'-'Z', 26-51 'a'-'z' (ASCII order); ids from 52 are ellipsis dims
constexpr int kEllipsis = -1;

int letter_id(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' : c - 'a' + 26; }

std::string label_name(int id) {
  if (id >= kLetters) return "... dim " + std::to_string(id - kLetters);
  return std::string(1, id < 26 ? static_cast<char>('A' + id) : static_cast<char>('a' + id - 26));
}

std::vector<int> parse_term(const std::string& term, const std::string& eq) {
  std::vector<int> out;
  bool ellipsis = false;
  for (size_t i = 0; i < term.size();) {
    if (term[i] == '.') {
      EMBER_CHECK(term.compare(i, 3, "...") == 0 && !ellipsis, ValueError,
                  "[einsum] each term may hold one \"...\" (three dots), got \"", term, "\" in \"", eq, "\"");
      ellipsis = true;
      out.push_back(kEllipsis);
      i += 3;
      continue;
    }
    EMBER_CHECK(std::isalpha(static_cast<unsigned char>(term[i])), ValueError, "[einsum] invalid character '", term[i],
                "' in equation \"", eq, "\" (subscripts are letters a-z, A-Z and \"...\")");
    out.push_back(letter_id(term[i]));
    ++i;
  }
  return out;
}

int64_t product(const Tensor& t, const std::vector<int64_t>& dims) {
  int64_t p = 1;
  for (int64_t d : dims) p *= t.size(d);
  return p;
}

}  // namespace

Tensor einsum(std::string_view equation, const std::vector<Tensor>& operands) {
  std::string eq;
  for (char c : equation)
    if (!std::isspace(static_cast<unsigned char>(c))) eq.push_back(c);
  EMBER_CHECK(!operands.empty(), ValueError, "[einsum] needs at least one operand for \"", eq, "\"");
  for (const Tensor& t : operands)
    EMBER_CHECK(t.defined(), ValueError, "[einsum] an operand of \"", eq, "\" is undefined");
  const size_t arrow = eq.find("->");
  std::vector<std::string> terms(1);
  for (char c : eq.substr(0, arrow)) {
    if (c == ',')
      terms.emplace_back();
    else
      terms.back().push_back(c);
  }
  const size_t n = operands.size();
  EMBER_CHECK(terms.size() == n, ValueError, "[einsum] equation \"", eq, "\" has ", terms.size(), " operand terms but ",
              n, " operands were given");

  // Label ids per operand, "..." expanded right-aligned into the E shared broadcast dims.
  std::vector<std::vector<int>> parsed(n), ids(n);
  int64_t num_ell = 0;
  for (size_t k = 0; k < n; ++k) {
    parsed[k] = parse_term(terms[k], eq);
    const int64_t letters = std::count_if(parsed[k].begin(), parsed[k].end(), [](int l) { return l != kEllipsis; });
    const bool ell = static_cast<int64_t>(parsed[k].size()) != letters;
    const int64_t dim = operands[k].dim();
    EMBER_CHECK(ell ? dim >= letters : dim == letters, ShapeError, "[einsum] operand ", k, " ", describe(operands[k]),
                " has ", dim, " dims but its subscripts \"", terms[k], "\" name ", letters);
    if (ell) num_ell = std::max(num_ell, dim - letters);
  }
  std::vector<int> count(kLetters, 0);
  for (size_t k = 0; k < n; ++k) {
    const int64_t letters = std::count_if(parsed[k].begin(), parsed[k].end(), [](int l) { return l != kEllipsis; });
    const int64_t e_k = operands[k].dim() - letters;
    for (int l : parsed[k]) {
      if (l == kEllipsis) {
        for (int64_t j = 0; j < e_k; ++j) ids[k].push_back(static_cast<int>(kLetters + num_ell - e_k + j));
      } else {
        ids[k].push_back(l);
        ++count[l];
      }
    }
  }

  // The output labels: explicit, or "..." then the letters used once, in ASCII order.
  std::vector<int> out_ids;
  if (arrow != std::string::npos) {
    std::vector<int> rhs = parse_term(eq.substr(arrow + 2), eq);
    std::vector<bool> seen(kLetters, false);
    for (int l : rhs) {
      if (l == kEllipsis) {
        for (int64_t j = 0; j < num_ell; ++j) out_ids.push_back(static_cast<int>(kLetters + j));
        continue;
      }
      EMBER_CHECK(count[l] > 0, ValueError, "[einsum] output subscript '", label_name(l),
                  "' does not appear in the inputs of \"", eq, "\"");
      EMBER_CHECK(!seen[l], ValueError, "[einsum] output subscript '", label_name(l), "' repeats in \"", eq, "\"");
      seen[l] = true;
      out_ids.push_back(l);
    }
  } else {
    for (int64_t j = 0; j < num_ell; ++j) out_ids.push_back(static_cast<int>(kLetters + j));
    for (int l = 0; l < kLetters; ++l)
      if (count[l] == 1) out_ids.push_back(l);
  }

  // Global order: the output labels, then every other label used.
  std::vector<int> pos(kLetters + num_ell, -1), label_at;
  for (int l : out_ids) {
    pos[l] = static_cast<int>(label_at.size());
    label_at.push_back(l);
  }
  const int64_t num_out = static_cast<int64_t>(label_at.size());
  for (int l = 0; l < kLetters + num_ell; ++l) {
    if (pos[l] >= 0 || (l < kLetters && count[l] == 0)) continue;
    pos[l] = static_cast<int>(label_at.size());
    label_at.push_back(l);
  }
  const int64_t total = static_cast<int64_t>(label_at.size());

  // Every operand in the full layout.
  std::vector<Tensor> full(n);
  for (size_t k = 0; k < n; ++k) {
    const Tensor& x = operands[k];
    std::vector<int> uniq;
    Shape size, stride;
    for (int64_t d = 0; d < x.dim(); ++d) {
      const int id = ids[k][d];
      auto it = std::find(uniq.begin(), uniq.end(), id);
      if (it == uniq.end()) {
        uniq.push_back(id);
        size.push_back(x.size(d));
        stride.push_back(x.stride(d));
        continue;
      }
      const size_t j = it - uniq.begin();
      EMBER_CHECK(size[j] == x.size(d), ShapeError, "[einsum] subscript '", label_name(id), "' repeats in operand ", k,
                  " ", describe(x), " over dims of sizes ", size[j], " and ", x.size(d));
      stride[j] += x.stride(d);  // the diagonal
    }
    Tensor v = uniq.size() < static_cast<size_t>(x.dim()) ? x.as_strided(size, stride, x.storage_offset()) : x;
    Shape perm;
    for (size_t i = 0; i < uniq.size(); ++i) perm.push_back(static_cast<int64_t>(i));
    std::sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return pos[uniq[a]] < pos[uniq[b]]; });
    Shape shape(total, 1);
    for (int64_t i : perm) shape[pos[uniq[i]]] = size[i];
    full[k] = v.permute(perm).reshape(shape);
  }

  // Contract left to right.
  auto needed = [&](int64_t g, size_t after) {
    if (g < num_out) return true;
    for (size_t k = after + 1; k < n; ++k)
      if (full[k].size(g) != 1) return true;
    return false;
  };
  Tensor acc = full[0];
  for (size_t k = 1; k < n; ++k) {
    Tensor b = full[k];
    std::vector<int64_t> batch, m, contract, nb, sum_a, sum_b, rest;
    for (int64_t g = 0; g < total; ++g) {
      const int64_t sa = acc.size(g), sb = b.size(g);
      const bool need = needed(g, k);
      if (sa != 1 && sb != 1) {
        EMBER_CHECK(sa == sb, ShapeError, "[einsum] subscript '", label_name(label_at[g]), "' of \"", eq,
                    "\" has size ", sa, " in one operand and ", sb, " in operand ", k);
        (need ? batch : contract).push_back(g);
      } else if (sa != 1) {
        (need ? m : sum_a).push_back(g);
      } else if (sb != 1) {
        (need ? nb : sum_b).push_back(g);
      } else {
        rest.push_back(g);
      }
    }
    rest.insert(rest.end(), sum_a.begin(), sum_a.end());
    rest.insert(rest.end(), sum_b.begin(), sum_b.end());
    if (!sum_a.empty()) acc = sum(acc, Shape(sum_a.begin(), sum_a.end()), true);
    if (!sum_b.empty()) b = sum(b, Shape(sum_b.begin(), sum_b.end()), true);
    if (contract.empty()) {
      acc = acc * b;  // an outer or elementwise product: broadcasting does it
      continue;
    }
    auto cat = [](std::initializer_list<const std::vector<int64_t>*> parts) {
      Shape s;
      for (auto* p : parts)
        for (int64_t g : *p) s.push_back(g);
      return s;
    };
    Shape pa = cat({&batch, &m, &contract, &nb, &rest});
    Shape pb = cat({&batch, &contract, &nb, &m, &rest});
    Tensor a3 = acc.permute(pa).reshape({product(acc, batch), product(acc, m), product(acc, contract)});
    Tensor b3 = b.permute(pb).reshape({product(b, batch), product(b, contract), product(b, nb)});
    Shape order = cat({&batch, &m, &nb, &contract, &rest});
    Shape rs;
    for (int64_t g : batch) rs.push_back(acc.size(g));
    for (int64_t g : m) rs.push_back(acc.size(g));
    for (int64_t g : nb) rs.push_back(b.size(g));
    rs.resize(total, 1);
    Shape inverse(static_cast<size_t>(total), 0);
    for (int64_t i = 0; i < total; ++i) inverse[order[i]] = i;
    acc = bmm(a3, b3).reshape(rs).permute(inverse);
  }

  std::vector<int64_t> summed;
  for (int64_t g = num_out; g < total; ++g)
    if (acc.size(g) != 1) summed.push_back(g);
  if (!summed.empty()) acc = sum(acc, Shape(summed.begin(), summed.end()), true);
  Shape out_shape;
  for (int64_t g = 0; g < num_out; ++g) out_shape.push_back(acc.size(g));
  return acc.reshape(out_shape);
}

}  // namespace ember
