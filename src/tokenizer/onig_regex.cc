#include "tokenizer/onig_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <cstdio>
#include <string>

#include "huginn/error.h"
#include "tokenizer/unicode.h"

namespace huginn::tok {
namespace {

std::string hex_cp(char32_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\\x{%X}", static_cast<unsigned>(c));
  return buf;
}

// Class-body text ("\x{..}-\x{..}...") for the Unicode 15.0-16.0 additions to
// every property whose name starts with one of the given prefixes (exact
// match for "Alphabetic").
std::string extra_ranges(std::initializer_list<std::string_view> props) {
  std::string out;
  for (size_t i = 0; i < kUnicodeExtraRangeCount; ++i) {
    const ExtraRange& r = kUnicodeExtraRanges[i];
    std::string_view p = r.property;
    bool hit = false;
    for (std::string_view want : props) {
      if (want.size() == 1 ? (p.size() == 2 && p[0] == want[0]) : p == want) hit = true;
    }
    if (!hit) continue;
    out += hex_cp(r.first);
    if (r.last != r.first) {
      out.push_back('-');
      out += hex_cp(r.last);
    }
  }
  return out;
}

// Maps a property name as Oniguruma accepts it to the property keys of the
// extra-range table ({} = no extension known, the name passes through).
std::vector<std::string_view> property_keys(std::string_view name) {
  std::string n;
  for (char c : name) {
    if (c == '_' || c == ' ' || c == '-') continue;
    n.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  static const struct {
    const char* name;
    const char* key;
  } kMap[] = {
      {"l", "L"},   {"letter", "L"},      {"m", "M"},  {"mark", "M"},     {"combiningmark", "M"},
      {"n", "N"},   {"number", "N"},      {"p", "P"},  {"punctuation", "P"}, {"punct", "P"},
      {"s", "S"},   {"symbol", "S"},      {"alphabetic", "Alphabetic"},   {"alpha", "Alphabetic"},
      {"lu", "Lu"}, {"uppercaseletter", "Lu"}, {"ll", "Ll"}, {"lowercaseletter", "Ll"},
      {"lt", "Lt"}, {"titlecaseletter", "Lt"}, {"lm", "Lm"}, {"modifierletter", "Lm"},
      {"lo", "Lo"}, {"otherletter", "Lo"},  {"mn", "Mn"}, {"nonspacingmark", "Mn"},
      {"mc", "Mc"}, {"spacingmark", "Mc"},  {"me", "Me"}, {"enclosingmark", "Me"},
      {"nd", "Nd"}, {"decimalnumber", "Nd"}, {"digit", "Nd"}, {"nl", "Nl"}, {"letternumber", "Nl"},
      {"no", "No"}, {"othernumber", "No"},  {"pc", "Pc"}, {"connectorpunctuation", "Pc"},
      {"pd", "Pd"}, {"dashpunctuation", "Pd"}, {"ps", "Ps"}, {"openpunctuation", "Ps"},
      {"pe", "Pe"}, {"closepunctuation", "Pe"}, {"pi", "Pi"}, {"initialpunctuation", "Pi"},
      {"pf", "Pf"}, {"finalpunctuation", "Pf"}, {"po", "Po"}, {"otherpunctuation", "Po"},
      {"sm", "Sm"}, {"mathsymbol", "Sm"},   {"sc", "Sc"}, {"currencysymbol", "Sc"},
      {"sk", "Sk"}, {"modifiersymbol", "Sk"}, {"so", "So"}, {"othersymbol", "So"},
  };
  for (const auto& m : kMap) {
    if (n == m.name) return {m.key};
  }
  return {};
}

std::string property_extras(std::string_view name) {
  std::string out;
  for (std::string_view key : property_keys(name)) out += extra_ranges({key});
  return out;
}

// Body of Oniguruma's Unicode word class (no brackets).
const std::string& word_body() {
  static const std::string body = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}" +
                                  extra_ranges({"Alphabetic", "M", "Nd", "Pc"});
  return body;
}

const char* const kSpaceBody =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}";

}  // namespace

std::string translate_onig_pattern(std::string_view p, const std::string& context) {
  std::string out;
  out.reserve(p.size() * 2);
  bool in_class = false;
  size_t class_start = 0;  // index in p just after '[' or '[^'
  const std::string W = "[" + word_body() + "]";
  const std::string notW = "[^" + word_body() + "]";
  auto fail = [&](const std::string& what) { throw Error(context + ": " + what + " in regex '" + std::string(p) + "'"); };

  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) fail("trailing backslash");
      char e = p[i + 1];
      if (e == 'p' || e == 'P') {
        bool neg = e == 'P';
        std::string name;
        size_t j = i + 2;
        if (j < p.size() && p[j] == '{') {
          size_t close = p.find('}', j);
          if (close == std::string_view::npos) fail("unterminated \\p{");
          name = std::string(p.substr(j + 1, close - j - 1));
          j = close + 1;
        } else if (j < p.size()) {
          name = std::string(1, p[j]);
          ++j;
        } else {
          fail("incomplete \\p");
        }
        if (!name.empty() && name[0] == '^') {
          neg = !neg;
          name.erase(0, 1);
        }
        std::string prop = std::string("\\p{") + name + "}";
        std::string extras = property_extras(name);
        if (in_class) {
          // Inside a class a negated property cannot be extended (PCRE2 10.42
          // has no class subtraction); it keeps PCRE2's Unicode 14 meaning.
          out += neg ? "\\P{" + name + "}" : prop + extras;
        } else if (extras.empty()) {
          out += (neg ? "\\P{" : "\\p{") + name + "}";
        } else {
          out += (neg ? "[^" : "[") + prop + extras + "]";
        }
        i = j;
        continue;
      }
      switch (e) {
        case 'w': out += in_class ? word_body() : W; break;
        case 'W':
          if (in_class) fail("\\W inside a character class is not supported");
          out += notW;
          break;
        case 's':
          if (!in_class) out.push_back('[');
          out += kSpaceBody;
          if (!in_class) out.push_back(']');
          break;
        case 'S':
          if (in_class) fail("\\S inside a character class is not supported");
          out += "[^" + std::string(kSpaceBody) + "]";
          break;
        case 'd': {
          std::string body = "\\p{Nd}" + extra_ranges({"Nd"});
          out += in_class ? body : "[" + body + "]";
          break;
        }
        case 'D':
          if (in_class) fail("\\D inside a character class is not supported");
          out += "[^\\p{Nd}" + extra_ranges({"Nd"}) + "]";
          break;
        case 'h': out += in_class ? "0-9a-fA-F" : "[0-9a-fA-F]"; break;
        case 'H':
          if (in_class) fail("\\H inside a character class is not supported");
          out += "[^0-9a-fA-F]";
          break;
        case 'b':
          if (in_class) {
            out += "\\x{08}";  // backspace inside a class
          } else {
            out += "(?:(?<=" + W + ")(?!" + W + ")|(?<!" + W + ")(?=" + W + "))";
          }
          break;
        case 'B':
          if (in_class) fail("\\B inside a character class");
          out += "(?:(?<=" + W + ")(?=" + W + ")|(?<!" + W + ")(?!" + W + "))";
          break;
        case 'u': {  // \uHHHH
          if (i + 6 > p.size()) fail("incomplete \\u escape");
          out += "\\x{" + std::string(p.substr(i + 2, 4)) + "}";
          i += 6;
          continue;
        }
        default:
          out.push_back('\\');
          // copy the escaped character whole (it may be multi-byte)
          {
            size_t len = utf8_len(static_cast<unsigned char>(e));
            out.append(p.substr(i + 1, len));
            i += 1 + len;
          }
          continue;
      }
      i += 2;
      continue;
    }
    if (in_class) {
      if (c == '[') {
        if (i + 1 < p.size() && p[i + 1] == ':') {
          size_t close = p.find(":]", i + 2);
          if (close == std::string_view::npos) fail("unterminated POSIX class");
          out.append(p.substr(i, close + 2 - i));
          i = close + 2;
          continue;
        }
        fail("nested character class is not supported");
      }
      if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') fail("character class intersection is not supported");
      if (c == ']' && i != class_start) in_class = false;
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out.push_back('[');
      ++i;
      if (i < p.size() && p[i] == '^') {
        out.push_back('^');
        ++i;
      }
      class_start = i;
      continue;
    }
    if (c == '(' && i + 1 < p.size() && p[i + 1] == '?') {
      // Option groups (?imx-imx) / (?imx-imx:...): Ruby's m is dotall.
      size_t j = i + 2;
      std::string opts;
      while (j < p.size() && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) {
        opts.push_back(p[j] == 'm' ? 's' : p[j]);
        ++j;
      }
      if (!opts.empty() && j < p.size() && (p[j] == ')' || p[j] == ':')) {
        out += "(?" + opts;
        i = j;
        continue;
      }
    }
    if (c == '{' && i + 1 < p.size() && p[i + 1] == ',') {
      size_t j = i + 2;
      while (j < p.size() && std::isdigit(static_cast<unsigned char>(p[j]))) ++j;
      if (j > i + 2 && j < p.size() && p[j] == '}') {
        out += "{0,";
        i += 2;
        continue;
      }
    }
    out.push_back(c);
    ++i;
  }
  if (in_class) fail("unterminated character class");
  return out;
}

namespace {

struct ThreadMatchState {
  pcre2_match_data* md = nullptr;
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* mctx = nullptr;
  ThreadMatchState() {
    md = pcre2_match_data_create(16, nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    mctx = pcre2_match_context_create(nullptr);
    if (stack && mctx) pcre2_jit_stack_assign(mctx, nullptr, stack);
  }
  ~ThreadMatchState() {
    pcre2_match_context_free(mctx);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(md);
  }
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState st;
  return st;
}

}  // namespace

Regex::Regex(std::string_view pattern, const std::string& context, bool literal) {
  std::string translated;
  uint32_t options = PCRE2_UTF;
  if (literal) {
    translated = std::string(pattern);
    options |= PCRE2_LITERAL;
  } else {
    translated = translate_onig_pattern(pattern, context);
    options |= PCRE2_UCP | PCRE2_MULTILINE;
  }
  int err = 0;
  PCRE2_SIZE erroff = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options, &err, &erroff,
                        nullptr);
  if (!code_) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error(context + ": invalid regex '" + std::string(pattern) + "': " + reinterpret_cast<const char*>(msg) +
                " at offset " + std::to_string(erroff));
  }
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(code_); }

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  ThreadMatchState& ts = thread_state();
  if (!ts.md) throw Error("tokenizer: out of memory for regex match data");
  const auto* subj = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t last_end = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  while (last_end <= s.size()) {
    int rc = jit_ ? pcre2_jit_match(code_, subj, s.size(), last_end, 0, ts.md, ts.mctx)
                  : pcre2_match(code_, subj, s.size(), last_end, PCRE2_NO_UTF_CHECK, ts.md, ts.mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw Error(std::string("tokenizer: regex match failed: ") + reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ts.md);
    size_t st = ov[0], en = ov[1];
    if (en < st) en = st;  // \K oddities
    if (st == en && have_last && last_match_end == en) {
      if (last_end >= s.size()) break;
      last_end += utf8_len(static_cast<unsigned char>(s[last_end]));
      continue;
    }
    out.emplace_back(st, en);
    last_end = en;
    last_match_end = en;
    have_last = true;
  }
}

}  // namespace huginn::tok
