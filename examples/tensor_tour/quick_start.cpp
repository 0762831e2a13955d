#include <ember.hpp>
#include <iostream>
using namespace ember;

int main() {
  manual_seed(0);
  Tensor x = randn({4, 3});  // f32, standard normal
  Tensor w = tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {1.0f, 1.0f}});
  Tensor p = softmax(matmul(x, w).relu() + 0.5, 1);  // [4, 2]; each row sums to 1
  std::cout << p << "\nrow sums: " << sum(p, {1}) << "\n";

  Tensor a = randn({4, 3}, {.requires_grad = true});
  Tensor loss = (matmul(a, a.t()).relu() * 2.0).sum();
  loss.backward();  // a.grad() now holds d loss / d a
  std::cout << "d loss / d a = " << a.grad() << "\n";

  save("quick_start.safetensors", {{"x", x}, {"p", p}});  // readable by Python's safetensors
  Tensor back = load("quick_start.safetensors").at("p");
  return (back - p).abs().max().item<float>() == 0.0f && a.grad().defined() ? 0 : 1;
}
