// Batch helpers and the default collate: stack each field of a list of examples.
#include "train/data/batch.hpp"

#include <string>

#include "core/ops/shape.hpp"

namespace ember::data {
namespace {

// Calls f(name, tensor-in-a, tensor-in-b) for every field name that either side defines.
template <class A, class F>
void for_each_field(const A& a, F&& f) {
  f("input", a.input);
  f("target", a.target);
  for (const auto& [name, t] : a.extra) f(name, t);
}

std::string field_names(const Batch& b) {
  std::string s;
  for_each_field(b, [&](const std::string& name, const Tensor& t) {
    if (!t.defined()) return;
    if (!s.empty()) s += ", ";
    s += name;
  });
  return s.empty() ? "none" : s;
}

// Stacks (or concatenates) field `name` of every item; `get` picks the field from an item.
template <class Item, class Get>
Tensor join_field(const char* op, const std::vector<Item>& items, const std::string& name, Get&& get, bool stack_) {
  const Tensor& first = get(items[0]);
  std::vector<Tensor> parts;
  parts.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const Tensor& t = get(items[i]);
    EMBER_CHECK(t.defined() == first.defined(), ValueError, "[", op, "] field '", name, "' is ",
                first.defined() ? "defined" : "undefined", " in entry 0 but ", t.defined() ? "defined" : "undefined",
                " in entry ", i);
    if (!t.defined()) continue;
    EMBER_CHECK(t.dtype() == first.dtype(), DTypeError, "[", op, "] field '", name, "': entry ", i, " is ", describe(t),
                " but entry 0 is ", describe(first));
    EMBER_CHECK(t.device() == first.device(), DeviceError, "[", op, "] field '", name, "': entry ", i, " is ",
                describe(t), " but entry 0 is ", describe(first));
    if (stack_) {
      EMBER_CHECK(t.shape() == first.shape(), ShapeError, "[", op, "] field '", name, "': entry ", i, " has shape ",
                  t.shape(), " but entry 0 has ", first.shape(), " (write a collate function to pad or pack them)");
    } else {
      EMBER_CHECK(t.dim() > 0, ShapeError, "[", op, "] field '", name, "' is 0-dim in entry ", i);
    }
    parts.push_back(t);
  }
  if (!first.defined()) return {};
  if (parts.size() == 1) return stack_ ? parts[0].unsqueeze(0) : parts[0];
  return stack_ ? stack(parts, 0) : cat(parts, 0);
}

template <class Out, class Item>
Out join(const char* op, const std::vector<Item>& items, bool stack_) {
  EMBER_CHECK(!items.empty(), ValueError, "[", op, "] needs at least one entry");
  for (size_t i = 1; i < items.size(); ++i) {
    EMBER_CHECK(items[i].extra.size() == items[0].extra.size(), ValueError, "[", op, "] entry ", i, " has ",
                items[i].extra.size(), " extra fields but entry 0 has ", items[0].extra.size());
  }
  Out out;
  out.input = join_field(
      op, items, "input", [](const Item& x) -> const Tensor& { return x.input; }, stack_);
  out.target = join_field(
      op, items, "target", [](const Item& x) -> const Tensor& { return x.target; }, stack_);
  for (const auto& field : items[0].extra) {
    const std::string& name = field.first;  // not a structured binding: clang 14 cannot capture those
    out.extra[name] = join_field(
        op, items, name,
        [&](const Item& x) -> const Tensor& {
          auto it = x.extra.find(name);
          EMBER_CHECK(it != x.extra.end(), ValueError, "[", op, "] extra field '", name, "' is missing from an entry");
          return it->second;
        },
        stack_);
  }
  return out;
}

}  // namespace

int64_t Batch::size() const {
  int64_t n = -1;
  for_each_field(*this, [&](const std::string&, const Tensor& t) {
    if (n < 0 && t.defined() && t.dim() > 0) n = t.size(0);
  });
  return n < 0 ? 0 : n;
}

Batch Batch::to(Device device, bool non_blocking) const {
  Batch b;
  if (input.defined()) b.input = input.to(device, false, non_blocking);
  if (target.defined()) b.target = target.to(device, false, non_blocking);
  for (const auto& [name, t] : extra) b.extra[name] = t.defined() ? t.to(device, false, non_blocking) : t;
  return b;
}

Batch Batch::pin_memory() const {
  Batch b;
  if (input.defined()) b.input = input.pin_memory();
  if (target.defined()) b.target = target.pin_memory();
  for (const auto& [name, t] : extra) b.extra[name] = t.defined() ? t.pin_memory() : t;
  return b;
}

bool Batch::has(const std::string& name) const {
  if (name == "input") return input.defined();
  if (name == "target") return target.defined();
  auto it = extra.find(name);
  return it != extra.end() && it->second.defined();
}

const Tensor& Batch::operator[](const std::string& name) const {
  EMBER_CHECK(has(name), IndexError, "[Batch] no field '", name, "' (fields: ", field_names(*this), ")");
  if (name == "input") return input;
  if (name == "target") return target;
  return extra.at(name);
}

Example Batch::example(int64_t i) const {
  const int64_t n = size();
  EMBER_CHECK(i >= 0 && i < n, IndexError, "[Batch::example] index ", i, " is out of range for a batch of ", n);
  Example e;
  if (input.defined()) e.input = input.select(0, i);
  if (target.defined()) e.target = target.select(0, i);
  for (const auto& [name, t] : extra) e.extra[name] = t.defined() ? t.select(0, i) : t;
  return e;
}

Batch default_collate(const std::vector<Example>& examples) { return join<Batch>("default_collate", examples, true); }

Batch cat_batches(const std::vector<Batch>& parts) { return join<Batch>("cat_batches", parts, false); }

}  // namespace ember::data
