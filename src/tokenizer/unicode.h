// UTF-8 helpers and Unicode character properties/normalization (ICU) used by
// the tokenizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace huginn::tok {

// Decodes one code point at s[i] (valid UTF-8 assumed); advances i.
inline char32_t next_cp(std::string_view s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  if (c < 0xE0) {
    char32_t cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
    i += 2;
    return cp;
  }
  if (c < 0xF0) {
    char32_t cp = ((c & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
                  (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
    i += 3;
    return cp;
  }
  char32_t cp = ((c & 0x07u) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12) |
                ((static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6) |
                (static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
  i += 4;
  return cp;
}

// Length of the UTF-8 sequence that starts with lead byte c (1 for invalid).
inline size_t utf8_len(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

inline bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

void append_utf8(std::string& out, char32_t cp);

// Returns the byte offset of the first invalid sequence, or npos if s is
// valid UTF-8 (no surrogates, no overlongs, nothing above U+10FFFF).
size_t find_invalid_utf8(std::string_view s);

// Rust String::from_utf8_lossy: each maximal invalid subsequence becomes one
// U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Character properties (Unicode tables of ICU).
bool is_whitespace(char32_t c);    // White_Space (Rust char::is_whitespace)
bool is_alphanumeric(char32_t c);  // Alphabetic or Numeric (Rust char::is_alphanumeric)
bool is_numeric(char32_t c);       // Nd, Nl, No (Rust char::is_numeric)
bool is_punctuation(char32_t c);   // ASCII punctuation or Unicode P* (HF Punctuation)

enum class NormForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view s, NormForm form);
std::string to_lower(std::string_view s);  // full Unicode lowercase (final sigma aware)

// Code points that Unicode 15.0-16.0 added to a property (see unicode_extra.cc).
struct ExtraRange {
  const char* property;  // two-letter General_Category or "Alphabetic"
  char32_t first, last;
};
extern const ExtraRange kUnicodeExtraRanges[];
extern const size_t kUnicodeExtraRangeCount;

}  // namespace huginn::tok
