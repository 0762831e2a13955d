// libFuzzer target for the data readers: IDX bytes, CSV text (header kinds, label options) and UTF-8
// text for a character vocabulary must parse or throw ember::Error, never crash or allocate without
// bound; accepted text must round-trip through encode/decode.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "train/data/readers.hpp"
#include "train/data/text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0], flags = data[1];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  try {
    switch (mode % 3) {
      case 0:
        ember::data::parse_idx(bytes);
        break;
      case 1: {
        ember::data::CsvOptions o;
        o.header = static_cast<ember::data::CsvHeader>(flags % 3);
        if (flags & 4) o.label_column = std::nullopt;
        o.string_labels = (flags & 8) != 0;
        o.delimiter = (flags & 16) ? ';' : ',';
        ember::data::parse_csv(bytes, o);
        break;
      }
      default: {
        auto vocab = ember::data::CharVocab::build(bytes);
        if (vocab.decode(vocab.encode(bytes)) != bytes) __builtin_trap();  // accepted text must round-trip
        break;
      }
    }
  } catch (const ember::Error&) {
    // rejected cleanly
  }
  return 0;
}
