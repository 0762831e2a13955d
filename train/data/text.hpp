// Text for character-level language models: CharVocab (Unicode code points <-> ids), NextTokenDataset
// (windows input = tokens[i, i+T), target = tokens[i+1, i+T+1]) and a train/val split helper.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tensor.hpp"
#include "train/data/dataset.hpp"

namespace ember::data {

// A character vocabulary over UTF-8 text: id k is the k-th character of chars() (by default the sorted
// distinct code points of the text, as nanoGPT's shakespeare_char does). Invalid UTF-8 is a FormatError.
class CharVocab {
 public:
  CharVocab() = default;
  // Ids in the given order; duplicates are a ValueError.
  explicit CharVocab(std::vector<char32_t> chars);
  static CharVocab build(std::string_view text);

  int64_t size() const { return static_cast<int64_t>(chars_.size()); }
  const std::vector<char32_t>& chars() const { return chars_; }
  bool contains(char32_t c) const;
  int64_t id(char32_t c) const;  // IndexError naming the character when absent
  // The text as an i64 tensor [n] of ids; a character outside the vocabulary is an IndexError naming it
  // and its byte offset.
  Tensor encode(std::string_view text) const;
  std::vector<int64_t> encode_ids(std::string_view text) const;
  // Ids (an integer tensor of any shape, read in order, or a list) back to UTF-8; bad ids raise IndexError.
  std::string decode(const Tensor& ids) const;
  std::string decode(const std::vector<int64_t>& ids) const;

  // {"type": "char", "chars": "<the characters in id order>"}.
  nlohmann::json to_json() const;
  static CharVocab from_json(const nlohmann::json& j);
  void save(const std::string& path) const;  // the JSON above
  static CharVocab load(const std::string& path);

 private:
  std::vector<char32_t> chars_;
  std::vector<int32_t> ascii_;  // id of each ASCII code point, -1 when absent
  std::unordered_map<char32_t, int64_t> other_;
};

// Every window of block_size + 1 consecutive tokens (starting every `stride` tokens): example i has
// input = tokens[s, s+T) and target = tokens[s+1, s+T+1] with s = i * stride. Batches are two gathers.
class NextTokenDataset : public Dataset {
 public:
  NextTokenDataset(Tensor tokens, int64_t block_size, int64_t stride = 1);
  int64_t size() const override { return size_; }
  Example get(int64_t index) const override;
  Batch get_batch(std::span<const int64_t> indices) const override;
  int64_t block_size() const { return block_; }
  const Tensor& tokens() const { return tokens_; }

 private:
  Tensor tokens_;  // 1-D i64, contiguous
  int64_t block_, stride_, size_;
};

// The first (1 - val_fraction) of the tokens and the rest, as nanoGPT splits a corpus (no shuffling:
// neighbouring windows overlap, so a random split would leak).
std::pair<Tensor, Tensor> split_tokens(const Tensor& tokens, double val_fraction = 0.1);

struct CharLmData {
  CharVocab vocab;
  std::shared_ptr<NextTokenDataset> train, val;
};
// A char-level language-model setup from raw text: the vocabulary, then train/val window datasets of
// block_size tokens over the split corpus.
CharLmData char_lm_data(std::string_view text, int64_t block_size, double val_fraction = 0.1);

}  // namespace ember::data
