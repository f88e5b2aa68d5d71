// Value helpers for the Jinja interpreter: Python-compatible str(), repr(),
// equality, truthiness, JSON, UTF-8 and case mapping.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "chat/jinja_internal.h"

namespace huginn::jinja {

void fail_at(const Loc& loc, const std::string& msg) {
  throw Error("chat template: line " + std::to_string(loc.line) + ", column " + std::to_string(loc.col) +
              ": " + msg);
}

// ---------------------------------------------------------------- UTF-8

std::vector<char32_t> utf8_decode(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  std::size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    char32_t cp;
    int len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c >> 5) == 6) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c >> 4) == 14) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c >> 3) == 30) {
      cp = c & 0x07;
      len = 4;
    } else {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    if (i + static_cast<std::size_t>(len) > n) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    bool ok = true;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<std::size_t>(len);
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string utf8_encode(const std::vector<char32_t>& cps, std::size_t begin, std::size_t end) {
  std::string out;
  for (std::size_t i = begin; i < end && i < cps.size(); ++i) utf8_append(out, cps[i]);
  return out;
}

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

bool is_py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic.
char32_t to_upper_cp(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x131) return 'I';
    if (c == 0x17F) return 'S';
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 0) ? c - 1 : c;
    if (c == 0x130 || c == 0x138 || c == 0x149 || c == 0x178) return c;
    return (c % 2 == 1) ? c - 1 : c;
  }
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

char32_t to_lower_cp(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F) {
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 1) ? c + 1 : c;
    if (c == 0x130) return 'i';
    if (c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F) return c;
    return (c % 2 == 0) ? c + 1 : c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

std::string str_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : utf8_decode(s)) utf8_append(out, to_upper_cp(c));
  return out;
}

std::string str_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : utf8_decode(s)) utf8_append(out, to_lower_cp(c));
  return out;
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<char32_t> cps = utf8_decode(s);
  std::vector<char32_t> set;
  if (chars) set = utf8_decode(*chars);
  auto strip_it = [&](char32_t c) {
    return chars ? std::find(set.begin(), set.end(), c) != set.end() : is_py_space(c);
  };
  std::size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return utf8_encode(cps, b, e);
}

// ---------------------------------------------------------------- Dict

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k.k == Value::K::Str && k.s == key) return &v;
  return nullptr;
}

const Value* Dict::find(const Value& key) const {
  if (key.k == Value::K::Str) return find(std::string_view(key.s));
  for (const auto& [k, v] : items)
    if (equals(k, key)) return &v;
  return nullptr;
}

void Dict::set(Value key, Value v) {
  for (auto& [k, old] : items)
    if (equals(k, key)) {
      old = std::move(v);
      return;
    }
  items.emplace_back(std::move(key), std::move(v));
}

// ---------------------------------------------------------------- basics

std::string type_name(const Value& v) {
  switch (v.k) {
    case Value::K::Undefined: return "Undefined";
    case Value::K::None: return "NoneType";
    case Value::K::Bool: return "bool";
    case Value::K::Int: return "int";
    case Value::K::Float: return "float";
    case Value::K::Str: return "str";
    case Value::K::List: return v.tuple ? "tuple" : "list";
    case Value::K::Dict: return v.d->is_namespace ? "Namespace" : v.d->is_loop ? "LoopContext" : "dict";
    case Value::K::Func: return "function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.k) {
    case Value::K::Undefined:
    case Value::K::None: return false;
    case Value::K::Bool: return v.b;
    case Value::K::Int: return v.i != 0;
    case Value::K::Float: return v.f != 0.0;
    case Value::K::Str: return !v.s.empty();
    case Value::K::List: return !v.l->empty();
    case Value::K::Dict: return v.d->is_namespace || v.d->is_loop || !v.d->items.empty();
    case Value::K::Func: return true;
  }
  return false;
}

static double num_as_double(const Value& v) {
  if (v.k == Value::K::Float) return v.f;
  if (v.k == Value::K::Bool) return v.b ? 1.0 : 0.0;
  return static_cast<double>(v.i);
}

bool equals(const Value& a, const Value& b) {
  if (a.is_num() && b.is_num()) {
    if (a.k != Value::K::Float && b.k != Value::K::Float) {
      std::int64_t x = a.k == Value::K::Bool ? a.b : a.i;
      std::int64_t y = b.k == Value::K::Bool ? b.b : b.i;
      return x == y;
    }
    return num_as_double(a) == num_as_double(b);
  }
  if (a.k != b.k) return false;
  switch (a.k) {
    case Value::K::Undefined:
    case Value::K::None: return true;
    case Value::K::Str: return a.s == b.s;
    case Value::K::List:
      if (a.tuple != b.tuple || a.l->size() != b.l->size()) return false;
      for (std::size_t i = 0; i < a.l->size(); ++i)
        if (!equals((*a.l)[i], (*b.l)[i])) return false;
      return true;
    case Value::K::Dict:
      if (a.d == b.d) return true;
      if (a.d->is_namespace || b.d->is_namespace || a.d->is_loop || b.d->is_loop) return false;
      if (a.d->items.size() != b.d->items.size()) return false;
      for (const auto& [k, v] : a.d->items) {
        const Value* o = b.d->find(k);
        if (!o || !equals(v, *o)) return false;
      }
      return true;
    case Value::K::Func: return a.fn == b.fn;
    default: return false;
  }
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  std::size_t p = 0;
  if (sci[0] == '-') {
    sign = "-";
    p = 1;
  }
  std::size_t epos = sci.find('e');
  std::string digits;
  for (std::size_t i = p; i < epos; ++i)
    if (sci[i] != '.') digits += sci[i];
  int e = std::stoi(sci.substr(epos + 1));
  std::string out = sign;
  if (e >= -4 && e < 16) {
    if (e >= 0) {
      std::size_t ip = static_cast<std::size_t>(e) + 1;
      if (digits.size() <= ip) {
        out += digits + std::string(ip - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, ip) + "." + digits.substr(ip);
      }
    } else {
      out += "0." + std::string(static_cast<std::size_t>(-e - 1), '0') + digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    out += eb;
  }
  return out;
}

static bool py_printable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c >= 0x80 && c <= 0xA0) return false;
  if (c == 0xAD || c == 0x1680 || c == 0x3000 || c == 0xFEFF) return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F)) return false;
  if (c >= 0xD800 && c <= 0xDFFF) return false;
  if ((c >= 0xE000 && c <= 0xF8FF) || (c >= 0xFFF9 && c <= 0xFFFB)) return false;
  return true;
}

static std::string str_repr(const std::string& s) {
  char q = '\'';
  if (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) q = '"';
  std::string out(1, q);
  for (char32_t c : utf8_decode(s)) {
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!py_printable(c)) {
      char b[16];
      if (c < 0x100) std::snprintf(b, sizeof b, "\\x%02x", static_cast<unsigned>(c));
      else std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      out += b;
    } else {
      utf8_append(out, c);
    }
  }
  out += q;
  return out;
}

static void repr_into(std::string& out, const Value& v, int depth);

static void to_str_into(std::string& out, const Value& v, int depth) {
  switch (v.k) {
    case Value::K::Undefined: return;
    case Value::K::None: out += "None"; return;
    case Value::K::Bool: out += v.b ? "True" : "False"; return;
    case Value::K::Int: out += std::to_string(v.i); return;
    case Value::K::Float: out += float_repr(v.f); return;
    case Value::K::Str: out += v.s; return;
    default: repr_into(out, v, depth);
  }
}

static void repr_into(std::string& out, const Value& v, int depth) {
  if (depth > 100) throw Error("value nested too deeply to print");
  switch (v.k) {
    case Value::K::Undefined: return;
    case Value::K::Str: out += str_repr(v.s); return;
    case Value::K::List: {
      out += v.tuple ? '(' : '[';
      bool first = true;
      for (const auto& x : *v.l) {
        if (!first) out += ", ";
        first = false;
        repr_into(out, x, depth + 1);
      }
      if (v.tuple && v.l->size() == 1) out += ',';
      out += v.tuple ? ')' : ']';
      return;
    }
    case Value::K::Dict: {
      if (v.d->is_loop) {
        out += "<LoopContext>";
        return;
      }
      if (v.d->is_namespace) out += "<Namespace ";
      out += '{';
      bool first = true;
      for (const auto& [k, x] : v.d->items) {
        if (!first) out += ", ";
        first = false;
        repr_into(out, k, depth + 1);
        out += ": ";
        repr_into(out, x, depth + 1);
      }
      out += '}';
      if (v.d->is_namespace) out += '>';
      return;
    }
    case Value::K::Func: out += "<function " + v.fn->name + ">"; return;
    default: to_str_into(out, v, depth);
  }
}

std::string to_str(const Value& v) {
  if (v.k == Value::K::Str) return v.s;
  std::string out;
  to_str_into(out, v, 0);
  return out;
}

std::string repr(const Value& v) {
  std::string out;
  repr_into(out, v, 0);
  return out;
}

// ---------------------------------------------------------------- JSON

static void json_str(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (char32_t c : utf8_decode(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: {
        char b[16];
        if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
          if (c >= 0x10000) {
            char32_t v = c - 0x10000;
            std::snprintf(b, sizeof b, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                          static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
          } else {
            std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
          }
          out += b;
        } else {
          utf8_append(out, c);
        }
      }
    }
  }
  out += '"';
}

static std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return float_repr(d);
}

static void json_into(std::string& out, const Value& v, bool ea, int indent, const std::string& isep,
                      const std::string& ksep, bool sort_keys, int level) {
  if (level > 100) throw Error("tojson: value nested too deeply");
  auto newline = [&](int lv) {
    out += '\n';
    out.append(static_cast<std::size_t>(indent) * static_cast<std::size_t>(lv), ' ');
  };
  switch (v.k) {
    case Value::K::None: out += "null"; return;
    case Value::K::Bool: out += v.b ? "true" : "false"; return;
    case Value::K::Int: out += std::to_string(v.i); return;
    case Value::K::Float: out += json_float(v.f); return;
    case Value::K::Str: json_str(out, v.s, ea); return;
    case Value::K::List: {
      if (v.l->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const auto& x : *v.l) {
        if (!first) out += isep;
        first = false;
        if (indent >= 0) newline(level + 1);
        json_into(out, x, ea, indent, isep, ksep, sort_keys, level + 1);
      }
      if (indent >= 0) newline(level);
      out += ']';
      return;
    }
    case Value::K::Dict: {
      if (v.d->is_namespace || v.d->is_loop)
        throw Error("tojson: Object of type " + type_name(v) + " is not JSON serializable");
      if (v.d->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> kv;
      for (const auto& [k, x] : v.d->items) {
        std::string key;
        switch (k.k) {
          case Value::K::Str: key = k.s; break;
          case Value::K::Int: key = std::to_string(k.i); break;
          case Value::K::Float: key = json_float(k.f); break;
          case Value::K::Bool: key = k.b ? "true" : "false"; break;
          case Value::K::None: key = "null"; break;
          default:
            throw Error("tojson: keys must be str, int, float, bool or None, not " +
                        type_name(k));
        }
        kv.emplace_back(std::move(key), &x);
      }
      if (sort_keys)
        std::stable_sort(kv.begin(), kv.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      bool first = true;
      for (const auto& [k, x] : kv) {
        if (!first) out += isep;
        first = false;
        if (indent >= 0) newline(level + 1);
        json_str(out, k, ea);
        out += ksep;
        json_into(out, *x, ea, indent, isep, ksep, sort_keys, level + 1);
      }
      if (indent >= 0) newline(level);
      out += '}';
      return;
    }
    default:
      throw Error("tojson: Object of type " + type_name(v) + " is not JSON serializable");
  }
}

std::string to_json(const Value& v, bool ensure_ascii, int indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys) {
  std::string out;
  json_into(out, v, ensure_ascii, indent, item_sep, key_sep, sort_keys, 0);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<std::int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) return Value::flt(static_cast<double>(u));
      return Value::integer(static_cast<std::int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value::flt(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value::str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List l;
      l.reserve(j.size());
      for (const auto& x : j) l.push_back(from_json(x));
      return Value::list(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<Dict>();
      for (auto it = j.begin(); it != j.end(); ++it) d->items.emplace_back(Value::str(it.key()), from_json(it.value()));
      return Value::dict(std::move(d));
    }
    default: return Value::none();
  }
}

}  // namespace huginn::jinja
