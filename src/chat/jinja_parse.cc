// Lexer and parser for the Jinja subset (jinja2 semantics with
// trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False).
#include <algorithm>
#include <cstring>

#include "chat/jinja_internal.h"

namespace huginn::jinja {
namespace {

enum class T { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, Str, Int, Float, Op, Eof };

struct Token {
  T t;
  std::string v;
  Loc loc;
  std::int64_t i = 0;
  double f = 0;
};

const char* tname(T t) {
  switch (t) {
    case T::Text: return "text";
    case T::VarBegin: return "'{{'";
    case T::VarEnd: return "'}}'";
    case T::BlockBegin: return "'{%'";
    case T::BlockEnd: return "'%}'";
    case T::Name: return "name";
    case T::Str: return "string";
    case T::Int: return "integer";
    case T::Float: return "float";
    case T::Op: return "operator";
    case T::Eof: return "end of template";
  }
  return "?";
}

std::string describe(const Token& t) {
  switch (t.t) {
    case T::Name:
    case T::Op: return "'" + t.v + "'";
    case T::Str: return "string literal";
    case T::Int:
    case T::Float: return "number " + t.v;
    default: return tname(t.t);
  }
}

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Python-whitespace-aware strips on UTF-8 text.
std::string rstrip_ws(const std::string& s) { return py_strip(s, nullptr, false, true); }
std::size_t skip_ws(const std::string& s, std::size_t p) {
  // returns the first position at or after p that is not Python whitespace
  while (p < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[p]);
    if (c < 0x80) {
      if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) {
        ++p;
        continue;
      }
      return p;
    }
    std::size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (p + len > s.size()) return p;
    std::vector<char32_t> cp = utf8_decode(std::string_view(s).substr(p, len));
    if (cp.size() == 1 && is_py_space(cp[0])) {
      p += len;
      continue;
    }
    return p;
  }
  return p;
}
bool all_ws(const std::string& s, std::size_t from) {
  return from < s.size() && skip_ws(s, from) == s.size();
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Newline normalisation (\r\n, \r -> \n) and removal of one trailing
    // newline, as jinja2 does before tokenizing.
    src_.reserve(source.size());
    for (std::size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (std::size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    std::size_t pos = 0;
    enum class Pending { None, Ws, Newline } pending = Pending::None;
    while (true) {
      std::size_t nxt = find_tag(pos);
      std::size_t text_start = pos;
      if (pending == Pending::Ws) text_start = skip_ws(src_, pos);
      else if (pending == Pending::Newline && pos < src_.size() && src_[pos] == '\n') text_start = pos + 1;
      if (nxt == std::string::npos) {
        if (text_start < src_.size()) emit_text(src_.substr(text_start), text_start);
        break;
      }
      std::string text = text_start < nxt ? src_.substr(text_start, nxt - text_start) : std::string();
      char kind = src_[nxt + 1];
      char mod = nxt + 2 < src_.size() ? src_[nxt + 2] : '\0';
      bool line_starting = text_start == 0 || src_[text_start - 1] == '\n';
      text = apply_left(text, kind, mod, line_starting);
      emit_text(text, text_start);
      std::size_t p = nxt + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      Loc open_loc = loc(nxt);
      if (kind == '#') {
        std::size_t end = src_.find("#}", p);
        if (end == std::string::npos) fail_at(open_loc, "unclosed comment: missing '#}'");
        char em = end > p ? src_[end - 1] : '\0';
        pos = end + 2;
        pending = em == '-' ? Pending::Ws : em == '+' ? Pending::None : Pending::Newline;
        continue;
      }
      if (kind == '%' && is_raw(p)) {
        pos = lex_raw(p, open_loc, pending);
        continue;
      }
      toks_.push_back({kind == '{' ? T::VarBegin : T::BlockBegin, "", open_loc});
      pos = lex_tag(p, kind, open_loc, pending);
    }
    toks_.push_back({T::Eof, "", loc(src_.size())});
    return std::move(toks_);
  }

 private:
  std::string src_;
  std::vector<std::size_t> line_starts_;
  std::vector<Token> toks_;

  Loc loc(std::size_t off) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), off);
    std::size_t line = static_cast<std::size_t>(it - line_starts_.begin());
    std::size_t col = off - line_starts_[line - 1] + 1;
    return {static_cast<int>(line), static_cast<int>(col)};
  }

  std::size_t find_tag(std::size_t pos) const {
    while (true) {
      std::size_t p = src_.find('{', pos);
      if (p == std::string::npos || p + 1 >= src_.size()) return std::string::npos;
      char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') return p;
      pos = p + 1;
    }
  }

  std::string apply_left(const std::string& text, char kind, char mod, bool line_starting) const {
    if (mod == '-') return rstrip_ws(text);
    if ((kind == '%' || kind == '#') && mod != '+') {
      std::size_t nl = text.rfind('\n');
      std::size_t l = nl == std::string::npos ? 0 : nl + 1;
      if ((l > 0 || line_starting) && all_ws(text, l)) return text.substr(0, l);
    }
    return text;
  }

  void emit_text(const std::string& text, std::size_t off) {
    if (text.empty()) return;
    toks_.push_back({T::Text, text, loc(off)});
  }

  bool is_raw(std::size_t p) const {
    while (p < src_.size() && ascii_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    std::size_t q = p;
    while (q < src_.size() && ascii_space(src_[q])) ++q;
    if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
    return src_.compare(q, 2, "%}") == 0;
  }

  template <typename P>
  std::size_t lex_raw(std::size_t p, const Loc& open_loc, P& pending) {
    std::size_t q = src_.find("%}", p);
    bool strip_after = src_[q - 1] == '-';
    std::size_t body_start = q + 2;
    if (strip_after) body_start = skip_ws(src_, body_start);
    // find {% [-+] endraw [-+] %}
    std::size_t s = body_start;
    while (true) {
      std::size_t t = src_.find("{%", s);
      if (t == std::string::npos) fail_at(open_loc, "unclosed 'raw' block: missing {% endraw %}");
      std::size_t u = t + 2;
      char mod = u < src_.size() ? src_[u] : '\0';
      if (mod == '-' || mod == '+') ++u;
      while (u < src_.size() && ascii_space(src_[u])) ++u;
      if (src_.compare(u, 6, "endraw") != 0) {
        s = t + 2;
        continue;
      }
      u += 6;
      while (u < src_.size() && ascii_space(src_[u])) ++u;
      char emod = '\0';
      if (u < src_.size() && (src_[u] == '-' || src_[u] == '+')) emod = src_[u++];
      if (src_.compare(u, 2, "%}") != 0) {
        s = t + 2;
        continue;
      }
      std::string body = src_.substr(body_start, t - body_start);
      bool line_starting = body_start == 0 || src_[body_start - 1] == '\n';
      body = apply_left(body, '%', mod, line_starting);
      emit_text(body, body_start);
      using PT = P;
      pending = emod == '-' ? PT::Ws : emod == '+' ? PT::None : PT::Newline;
      return u + 2;
    }
  }

  template <typename P>
  std::size_t lex_tag(std::size_t p, char kind, const Loc& open_loc, P& pending) {
    std::vector<char> stack;
    while (true) {
      while (p < src_.size() && ascii_space(src_[p])) ++p;
      if (p >= src_.size())
        fail_at(open_loc, std::string("unclosed tag: missing '") + (kind == '{' ? "}}" : "%}") + "'");
      char c = src_[p];
      Loc here = loc(p);
      if (stack.empty()) {
        const char* end = kind == '{' ? "}}" : "%}";
        if (src_.compare(p, 2, end) == 0) {
          toks_.push_back({kind == '{' ? T::VarEnd : T::BlockEnd, "", here});
          pending = kind == '{' ? P::None : P::Newline;
          return p + 2;
        }
        if ((c == '-' || (c == '+' && kind == '%')) && src_.compare(p + 1, 2, end) == 0) {
          toks_.push_back({kind == '{' ? T::VarEnd : T::BlockEnd, "", here});
          pending = c == '-' ? P::Ws : P::None;
          return p + 3;
        }
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::size_t q = p;
        while (q < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) ++q;
        toks_.push_back({T::Name, src_.substr(p, q - p), here});
        p = q;
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c))) {
        p = lex_number(p, here);
        continue;
      }
      if (c == '\'' || c == '"') {
        p = lex_string(p, here);
        continue;
      }
      static const char* ops3[] = {"//", "**", "==", "!=", ">=", "<="};
      std::string op;
      for (const char* o : ops3)
        if (src_.compare(p, 2, o) == 0) op = o;
      if (op.empty()) {
        if (std::strchr("+-/*%~[](){}><=.:|,;", c) == nullptr || c == '\0')
          fail_at(here, std::string("unexpected character '") + c + "' in tag");
        op = std::string(1, c);
      }
      if (op == "(" || op == "[" || op == "{") stack.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      if (op == ")" || op == "]" || op == "}") {
        if (stack.empty()) fail_at(here, "unexpected '" + op + "'");
        if (stack.back() != op[0])
          fail_at(here, "unexpected '" + op + "', expected '" + std::string(1, stack.back()) + "'");
        stack.pop_back();
      }
      toks_.push_back({T::Op, op, here});
      p += op.size();
    }
  }

  std::size_t lex_number(std::size_t p, const Loc& here) {
    std::size_t q = p;
    auto digits = [&] {
      while (q < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[q])) ||
                                 (src_[q] == '_' && q + 1 < src_.size() &&
                                  std::isdigit(static_cast<unsigned char>(src_[q + 1])))))
        ++q;
    };
    digits();
    bool is_float = false;
    if (q + 1 < src_.size() && src_[q] == '.' && std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
      ++q;
      digits();
      is_float = true;
    }
    if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      std::size_t r = q + 1;
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < src_.size() && std::isdigit(static_cast<unsigned char>(src_[r]))) {
        q = r;
        digits();
        is_float = true;
      }
    }
    std::string text;
    for (std::size_t k = p; k < q; ++k)
      if (src_[k] != '_') text += src_[k];
    Token t{is_float ? T::Float : T::Int, text, here};
    if (is_float) {
      t.f = std::strtod(text.c_str(), nullptr);
    } else {
      errno = 0;
      char* endp = nullptr;
      long long v = std::strtoll(text.c_str(), &endp, 10);
      if (errno == ERANGE) fail_at(here, "integer literal too large: " + text);
      t.i = v;
    }
    toks_.push_back(std::move(t));
    return q;
  }

  std::size_t lex_string(std::size_t p, const Loc& here) {
    char q = src_[p];
    std::string out;
    std::size_t i = p + 1;
    auto hexval = [&](std::size_t at, int n, char32_t& cp) {
      if (at + static_cast<std::size_t>(n) > src_.size()) return false;
      cp = 0;
      for (int k = 0; k < n; ++k) {
        char h = src_[at + static_cast<std::size_t>(k)];
        if (!std::isxdigit(static_cast<unsigned char>(h))) return false;
        cp = cp * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                                        : (std::tolower(h) - 'a' + 10));
      }
      return true;
    };
    while (true) {
      if (i >= src_.size()) fail_at(here, "unterminated string literal");
      char c = src_[i];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) fail_at(here, "unterminated string literal");
      char e = src_[i + 1];
      i += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'a': out += '\a'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp;
          if (!hexval(i, n, cp) || cp > 0x10FFFF)
            fail_at(here, std::string("invalid \\") + e + " escape in string literal");
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
          utf8_append(out, cp);
          i += static_cast<std::size_t>(n);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k, ++i)
              cp = cp * 8 + static_cast<char32_t>(src_[i] - '0');
            utf8_append(out, cp);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    toks_.push_back({T::Str, out, here});
    return i + 1;
  }
};

// ------------------------------------------------------------------ parser

const char* const kKnownTags[] = {"if", "elif", "else", "endif", "for", "endfor", "set", "endset", "macro",
                                  "endmacro", "call", "endcall", "filter", "endfilter", "break", "continue",
                                  "generation", "endgeneration", "with", "endwith"};

class Parser {
 public:
  Parser(std::vector<Token> toks, const Limits& lim) : toks_(std::move(toks)), lim_(lim) {}

  Program parse_program() {
    Program prog;
    prog.body = parse_body({}, nullptr);
    return prog;
  }

 private:
  std::vector<Token> toks_;
  std::size_t p_ = 0;
  const Limits& lim_;
  int depth_ = 0;
  int loop_depth_ = 0;

  struct DepthGuard {
    Parser& ps;
    DepthGuard(Parser& p, const Loc& l) : ps(p) {
      if (++ps.depth_ > ps.lim_.max_depth) fail_at(l, "template nested too deeply");
    }
    ~DepthGuard() { --ps.depth_; }
  };

  const Token& cur() const { return toks_[p_]; }
  const Token& peek(std::size_t k = 1) const { return toks_[std::min(p_ + k, toks_.size() - 1)]; }
  Token next() { return toks_[p_ < toks_.size() - 1 ? p_++ : p_]; }
  bool is_op(const char* op) const { return cur().t == T::Op && cur().v == op; }
  bool is_name(const char* n) const { return cur().t == T::Name && cur().v == n; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    ++p_;
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    ++p_;
    return true;
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) fail_at(cur().loc, std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().t != T::Name) fail_at(cur().loc, "expected a name, got " + describe(cur()));
    return next().v;
  }
  void expect_block_end(const char* tag) {
    if (cur().t != T::BlockEnd)
      fail_at(cur().loc, std::string("expected end of '") + tag + "' tag ('%}'), got " + describe(cur()));
    ++p_;
  }

  ExprP mk(Expr::K k, const Loc& loc) {
    auto e = std::make_unique<Expr>();
    e->k = k;
    e->loc = loc;
    return e;
  }
  ExprP finish(ExprP e) {
    int d = 0;
    for (auto& c : e->kids)
      if (c) d = std::max(d, c->depth);
    for (auto& c : e->args) d = std::max(d, c->depth);
    for (auto& [n, c] : e->kwargs) d = std::max(d, c->depth);
    e->depth = d + 1;
    if (e->depth > lim_.max_depth) fail_at(e->loc, "expression nested too deeply");
    return e;
  }

  // ---- statements

  // Parses until a block tag whose name is in `ends` (not consumed: the parser
  // stops at the '{%' token) or end of input (only allowed when ends is empty).
  Body parse_body(const std::vector<std::string>& ends, const Token* opener) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.t == T::Eof) {
        if (!ends.empty())
          fail_at(opener->loc, "unclosed '" + opener->v + "' block: missing {% " + ends.back() + " %}");
        return body;
      }
      if (t.t == T::Text) {
        auto s = std::make_unique<Stmt>();
        s->k = Stmt::K::Text;
        s->loc = t.loc;
        s->text = t.v;
        body.push_back(std::move(s));
        ++p_;
        continue;
      }
      if (t.t == T::VarBegin) {
        Loc l = t.loc;
        ++p_;
        auto s = std::make_unique<Stmt>();
        s->k = Stmt::K::Output;
        s->loc = l;
        s->expr = parse_tuple(true);
        if (cur().t != T::VarEnd) fail_at(cur().loc, "expected '}}', got " + describe(cur()));
        ++p_;
        body.push_back(std::move(s));
        continue;
      }
      if (t.t != T::BlockBegin) fail_at(t.loc, "unexpected " + describe(t));
      const Token& nm = peek();
      if (nm.t != T::Name) fail_at(nm.loc, "expected a tag name after '{%', got " + describe(nm));
      if (std::find(ends.begin(), ends.end(), nm.v) != ends.end()) return body;
      body.push_back(parse_stmt());
    }
  }

  StmtP parse_stmt() {
    ++p_;  // '{%'
    Token nm = next();
    DepthGuard g(*this, nm.loc);
    auto s = std::make_unique<Stmt>();
    s->loc = nm.loc;
    const std::string& tag = nm.v;
    if (tag == "if") {
      s->k = Stmt::K::If;
      ExprP c = parse_tuple(true);
      expect_block_end("if");
      while (true) {
        Body b = parse_body({"elif", "else", "endif"}, &nm);
        s->branches.emplace_back(std::move(c), std::move(b));
        ++p_;  // '{%'
        Token kw = next();
        if (kw.v == "elif") {
          c = parse_tuple(true);
          expect_block_end("elif");
        } else if (kw.v == "else") {
          expect_block_end("else");
          Body eb = parse_body({"endif"}, &nm);
          s->branches.emplace_back(nullptr, std::move(eb));
          p_ += 2;
          expect_block_end("endif");
          break;
        } else {
          expect_block_end("endif");
          break;
        }
      }
    } else if (tag == "for") {
      s->k = Stmt::K::For;
      s->target = parse_target(false);
      if (!accept_name("in")) fail_at(cur().loc, "expected 'in' in for loop, got " + describe(cur()));
      s->expr = parse_tuple(false);
      if (accept_name("if")) s->cond = parse_tuple(true);
      if (is_name("recursive")) fail_at(cur().loc, "recursive for loops are not supported");
      expect_block_end("for");
      ++loop_depth_;
      s->body = parse_body({"else", "endfor"}, &nm);
      --loop_depth_;
      ++p_;
      if (next().v == "else") {
        expect_block_end("else");
        s->else_body = parse_body({"endfor"}, &nm);
        p_ += 2;
      }
      expect_block_end("endfor");
    } else if (tag == "set") {
      s->target = parse_target(true);
      if (accept_op("=")) {
        s->k = Stmt::K::Set;
        s->expr = parse_tuple(true);
        expect_block_end("set");
      } else {
        s->k = Stmt::K::SetBlock;
        if (!s->target.attr.empty() || s->target.names.size() != 1)
          fail_at(nm.loc, "block 'set' needs a single variable name");
        if (is_op("|")) s->expr = parse_filter_chain(nullptr);
        expect_block_end("set");
        s->body = parse_body({"endset"}, &nm);
        p_ += 2;
        expect_block_end("endset");
      }
    } else if (tag == "macro") {
      s->k = Stmt::K::Macro;
      s->name = expect_name();
      parse_signature(*s);
      expect_block_end("macro");
      int saved = loop_depth_;
      loop_depth_ = 0;
      s->body = parse_body({"endmacro"}, &nm);
      loop_depth_ = saved;
      p_ += 2;
      expect_block_end("endmacro");
    } else if (tag == "call") {
      s->k = Stmt::K::CallBlock;
      if (is_op("(")) parse_signature(*s);
      s->expr = parse_expression(true);
      if (s->expr->k != Expr::K::Call) fail_at(nm.loc, "'call' block needs a call expression");
      expect_block_end("call");
      s->body = parse_body({"endcall"}, &nm);
      p_ += 2;
      expect_block_end("endcall");
    } else if (tag == "filter") {
      s->k = Stmt::K::FilterBlock;
      s->expr = parse_filter_chain(nullptr, /*first_without_pipe=*/true);
      expect_block_end("filter");
      s->body = parse_body({"endfilter"}, &nm);
      p_ += 2;
      expect_block_end("endfilter");
    } else if (tag == "with") {
      s->k = Stmt::K::With;
      while (cur().t != T::BlockEnd) {
        if (!s->assigns.empty()) expect_op(",");
        Target t = parse_target(false);
        expect_op("=");
        s->assigns.emplace_back(std::move(t), parse_expression(true));
      }
      expect_block_end("with");
      s->body = parse_body({"endwith"}, &nm);
      p_ += 2;
      expect_block_end("endwith");
    } else if (tag == "generation") {
      s->k = Stmt::K::Scope;
      expect_block_end("generation");
      s->body = parse_body({"endgeneration"}, &nm);
      p_ += 2;
      expect_block_end("endgeneration");
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail_at(nm.loc, "'" + tag + "' outside of a for loop");
      s->k = tag == "break" ? Stmt::K::Break : Stmt::K::Continue;
      expect_block_end(tag.c_str());
    } else {
      bool known = std::find_if(std::begin(kKnownTags), std::end(kKnownTags),
                                [&](const char* k) { return tag == k; }) != std::end(kKnownTags);
      if (known) fail_at(nm.loc, "unexpected '{% " + tag + " %}' (no matching opening tag)");
      fail_at(nm.loc, "unknown or unsupported tag '" + tag + "'");
    }
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (is_op(")")) break;
      Loc l = cur().loc;
      std::string n = expect_name();
      ExprP def;
      if (accept_op("=")) def = parse_expression(true);
      else if (!s.defaults.empty() && s.defaults.back())
        fail_at(l, "non-default argument '" + n + "' follows default argument");
      s.params.push_back(n);
      s.defaults.push_back(std::move(def));
    }
    expect_op(")");
  }

  Target parse_target(bool allow_attr) {
    Target t;
    Loc l = cur().loc;
    t.names.push_back(expect_name());
    if (allow_attr && accept_op(".")) {
      t.attr = expect_name();
      return t;
    }
    bool paren = false;
    (void)paren;
    while (accept_op(",")) {
      if (cur().t != T::Name) break;
      t.names.push_back(expect_name());
    }
    for (const auto& n : t.names)
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
        fail_at(l, "cannot assign to '" + n + "'");
    return t;
  }

  // ---- expressions

  ExprP parse_tuple(bool with_condexpr) {
    Loc l = cur().loc;
    std::vector<ExprP> items;
    bool comma = false;
    while (true) {
      if (!items.empty()) {
        if (!accept_op(",")) break;
        comma = true;
        if (cur().t == T::VarEnd || cur().t == T::BlockEnd || is_op(")") || is_name("if") || is_name("in"))
          break;
      }
      items.push_back(parse_expression(with_condexpr));
    }
    if (!comma) return std::move(items[0]);
    auto e = mk(Expr::K::TupleLit, l);
    e->kids = std::move(items);
    return finish(std::move(e));
  }

  ExprP parse_expression(bool with_condexpr) {
    DepthGuard g(*this, cur().loc);
    if (!with_condexpr) return parse_or();
    ExprP e = parse_or();
    while (is_name("if")) {
      Loc l = cur().loc;
      ++p_;
      ExprP c = parse_or();
      ExprP other;
      if (accept_name("else")) other = parse_expression(true);
      auto n = mk(Expr::K::Cond, l);
      n->kids.push_back(std::move(c));
      n->kids.push_back(std::move(e));
      n->kids.push_back(std::move(other));
      e = finish(std::move(n));
    }
    return e;
  }

  ExprP parse_or() {
    ExprP e = parse_and();
    while (is_name("or")) {
      auto n = mk(Expr::K::Or, next().loc);
      n->kids.push_back(std::move(e));
      n->kids.push_back(parse_and());
      e = finish(std::move(n));
    }
    return e;
  }

  ExprP parse_and() {
    ExprP e = parse_not();
    while (is_name("and")) {
      auto n = mk(Expr::K::And, next().loc);
      n->kids.push_back(std::move(e));
      n->kids.push_back(parse_not());
      e = finish(std::move(n));
    }
    return e;
  }

  ExprP parse_not() {
    if (is_name("not")) {
      DepthGuard g(*this, cur().loc);
      auto n = mk(Expr::K::Unary, next().loc);
      n->name = "not";
      n->kids.push_back(parse_not());
      return finish(std::move(n));
    }
    return parse_compare();
  }

  ExprP parse_compare() {
    ExprP e = parse_math1();
    while (true) {
      std::string op;
      Loc l = cur().loc;
      if (cur().t == T::Op && (cur().v == "==" || cur().v == "!=" || cur().v == "<" || cur().v == "<=" ||
                               cur().v == ">" || cur().v == ">=")) {
        op = next().v;
      } else if (is_name("in")) {
        ++p_;
        op = "in";
      } else if (is_name("not") && peek().t == T::Name && peek().v == "in") {
        p_ += 2;
        op = "not in";
      } else {
        break;
      }
      auto n = mk(Expr::K::Binary, l);
      n->name = op;
      n->kids.push_back(std::move(e));
      n->kids.push_back(parse_math1());
      e = finish(std::move(n));
    }
    return e;
  }

  ExprP binary(ExprP l, const Token& op, ExprP r) {
    auto n = mk(Expr::K::Binary, op.loc);
    n->name = op.v;
    n->kids.push_back(std::move(l));
    n->kids.push_back(std::move(r));
    return finish(std::move(n));
  }

  ExprP parse_math1() {
    ExprP e = parse_concat();
    while (is_op("+") || is_op("-")) {
      Token op = next();
      e = binary(std::move(e), op, parse_concat());
    }
    return e;
  }

  ExprP parse_concat() {
    ExprP e = parse_math2();
    while (is_op("~")) {
      Token op = next();
      e = binary(std::move(e), op, parse_math2());
    }
    return e;
  }

  ExprP parse_math2() {
    ExprP e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      Token op = next();
      e = binary(std::move(e), op, parse_pow());
    }
    return e;
  }

  ExprP parse_pow() {
    ExprP e = parse_unary(true);
    while (is_op("**")) {
      Token op = next();
      e = binary(std::move(e), op, parse_unary(true));
    }
    return e;
  }

  ExprP parse_unary(bool with_filter) {
    DepthGuard g(*this, cur().loc);
    ExprP e;
    if (is_op("-") || is_op("+")) {
      Token op = next();
      auto n = mk(Expr::K::Unary, op.loc);
      n->name = op.v;
      n->kids.push_back(parse_unary(false));
      e = finish(std::move(n));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprP parse_primary() {
    DepthGuard g(*this, cur().loc);
    const Token& t = cur();
    Loc l = t.loc;
    if (t.t == T::Name) {
      std::string v = next().v;
      auto e = mk(Expr::K::Literal, l);
      if (v == "true" || v == "True") e->value = Value::boolean(true);
      else if (v == "false" || v == "False") e->value = Value::boolean(false);
      else if (v == "none" || v == "None") e->value = Value::none();
      else {
        e->k = Expr::K::Name;
        e->name = v;
      }
      return finish(std::move(e));
    }
    if (t.t == T::Str) {
      std::string s;
      while (cur().t == T::Str) s += next().v;  // adjacent literals concatenate
      auto e = mk(Expr::K::Literal, l);
      e->value = Value::str(std::move(s));
      return finish(std::move(e));
    }
    if (t.t == T::Int || t.t == T::Float) {
      Token n = next();
      auto e = mk(Expr::K::Literal, l);
      e->value = n.t == T::Int ? Value::integer(n.i) : Value::flt(n.f);
      return finish(std::move(e));
    }
    if (accept_op("(")) {
      if (accept_op(")")) {
        auto e = mk(Expr::K::TupleLit, l);
        return finish(std::move(e));
      }
      ExprP e = parse_tuple(true);
      expect_op(")");
      return e;
    }
    if (accept_op("[")) {
      auto e = mk(Expr::K::ListLit, l);
      while (!is_op("]")) {
        if (!e->kids.empty()) {
          expect_op(",");
          if (is_op("]")) break;
        }
        e->kids.push_back(parse_expression(true));
      }
      expect_op("]");
      return finish(std::move(e));
    }
    if (accept_op("{")) {
      auto e = mk(Expr::K::DictLit, l);
      while (!is_op("}")) {
        if (!e->kids.empty()) {
          expect_op(",");
          if (is_op("}")) break;
        }
        e->kids.push_back(parse_expression(true));
        expect_op(":");
        e->kids.push_back(parse_expression(true));
      }
      expect_op("}");
      return finish(std::move(e));
    }
    fail_at(l, "unexpected " + describe(t));
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (!e.args.empty() || !e.kwargs.empty()) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail_at(cur().loc, "*args / **kwargs in calls are not supported");
      if (cur().t == T::Name && peek().t == T::Op && peek().v == "=") {
        std::string k = next().v;
        ++p_;
        e.kwargs.emplace_back(k, parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail_at(cur().loc, "positional argument follows keyword argument");
        e.args.push_back(parse_expression(true));
      }
    }
    expect_op(")");
  }

  ExprP parse_postfix(ExprP e) {
    while (true) {
      if (is_op(".")) {
        Loc l = next().loc;
        auto n = mk(Expr::K::Attr, l);
        if (cur().t == T::Name) {
          n->name = next().v;
        } else if (cur().t == T::Int) {
          n->k = Expr::K::Item;
          auto lit = mk(Expr::K::Literal, cur().loc);
          lit->value = Value::integer(next().i);
          n->kids.push_back(std::move(e));
          n->kids.push_back(finish(std::move(lit)));
          e = finish(std::move(n));
          continue;
        } else {
          fail_at(cur().loc, "expected attribute name after '.', got " + describe(cur()));
        }
        n->kids.push_back(std::move(e));
        e = finish(std::move(n));
      } else if (is_op("[")) {
        Loc l = next().loc;
        // subscript or slice
        ExprP a, b, c;
        bool slice = false;
        if (!is_op(":")) a = parse_expression(true);
        if (accept_op(":")) {
          slice = true;
          if (!is_op("]") && !is_op(":")) b = parse_expression(true);
          if (accept_op(":")) {
            if (!is_op("]")) c = parse_expression(true);
          }
        }
        expect_op("]");
        auto n = mk(slice ? Expr::K::Slice : Expr::K::Item, l);
        n->kids.push_back(std::move(e));
        n->kids.push_back(std::move(a));
        if (slice) {
          n->kids.push_back(std::move(b));
          n->kids.push_back(std::move(c));
        }
        e = finish(std::move(n));
      } else if (is_op("(")) {
        auto n = mk(Expr::K::Call, cur().loc);
        parse_call_args(*n);
        n->kids.push_back(std::move(e));
        e = finish(std::move(n));
      } else {
        return e;
      }
    }
  }

  ExprP parse_one_filter(ExprP e, const Loc& l) {
    std::string name = expect_name();
    while (accept_op(".")) name += "." + expect_name();
    if (!is_known_filter(name)) fail_at(l, "unknown filter '" + name + "'");
    auto n = mk(Expr::K::Filter, l);
    n->name = name;
    if (is_op("(")) parse_call_args(*n);
    n->kids.push_back(std::move(e));
    return finish(std::move(n));
  }

  // For {% filter %} and {% set x | f %}: a chain applied to a null operand.
  ExprP parse_filter_chain(ExprP e, bool first_without_pipe = false) {
    if (first_without_pipe) e = parse_one_filter(std::move(e), cur().loc);
    while (is_op("|")) {
      Loc l = next().loc;
      e = parse_one_filter(std::move(e), l);
    }
    return e;
  }

  ExprP parse_filter_expr(ExprP e) {
    while (true) {
      if (is_op("|")) {
        Loc l = next().loc;
        e = parse_one_filter(std::move(e), l);
      } else if (is_name("is")) {
        Loc l = next().loc;
        bool neg = accept_name("not");
        std::string name = expect_name();
        while (accept_op(".")) name += "." + expect_name();
        if (!is_known_test(name)) fail_at(l, "unknown test '" + name + "'");
        auto n = mk(Expr::K::Test, l);
        n->name = name;
        n->negate = neg;
        if (is_op("(")) {
          parse_call_args(*n);
        } else if ((cur().t == T::Name || cur().t == T::Str || cur().t == T::Int || cur().t == T::Float ||
                    is_op("[") || is_op("{")) &&
                   !(is_name("else") || is_name("or") || is_name("and"))) {
          if (is_name("is")) fail_at(cur().loc, "you cannot chain multiple tests with 'is'");
          ExprP arg = parse_postfix(parse_primary());
          n->args.push_back(std::move(arg));
        }
        n->kids.push_back(std::move(e));
        e = finish(std::move(n));
      } else if (is_op("(")) {
        auto n = mk(Expr::K::Call, cur().loc);
        parse_call_args(*n);
        n->kids.push_back(std::move(e));
        e = finish(std::move(n));
      } else {
        return e;
      }
    }
  }
};

}  // namespace

Program parse(std::string_view source, const Limits& limits) {
  Lexer lx(source);
  Parser ps(lx.run(), limits);
  return ps.parse_program();
}

}  // namespace huginn::jinja
