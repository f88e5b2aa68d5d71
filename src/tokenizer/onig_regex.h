// Regexes of tokenizer.json: Oniguruma (Ruby syntax, Unicode 16.0 tables) as
// the reference library runs them, executed with PCRE2 (JIT, UTF + UCP).
//
// translate_onig_pattern() rewrites the parts whose meaning differs:
//  - \p{..} of General_Category values gets the code points Unicode 15.0-16.0
//    added (PCRE2 10.42 has Unicode 14.0 tables);
//  - \w, \b, \B use Oniguruma's word definition (Alphabetic, Mark,
//    Decimal_Number, Connector_Punctuation, Join_Control); PCRE2's UCP \w is
//    only L, N and '_', so `\nabla` + U+0301 would get a boundary;
//  - \s, \S are the White_Space property; \d is Nd; \h is a hex digit;
//  - Ruby's (?m) (dot matches newline) becomes PCRE2's (?s); ^ and $ are line
//    anchors (PCRE2_MULTILINE); x{,n} becomes x{0,n}.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pcre2_real_code_8;

namespace huginn::tok {

// Throws huginn::Error (prefixed with context) on syntax PCRE2 cannot express
// (nested character classes, class intersection).
std::string translate_onig_pattern(std::string_view pattern, const std::string& context);

class Regex {
 public:
  // pattern: Oniguruma syntax; literal=true compiles an escaped literal.
  Regex(std::string_view pattern, const std::string& context, bool literal = false);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All matches [start, end) of subject, with the find_iter semantics of the
  // Rust onig crate (an empty match right after the previous match is
  // skipped by advancing one character).
  void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
};

}  // namespace huginn::tok
