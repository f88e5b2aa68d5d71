// Evaluator for the Jinja subset: scopes, statements, expressions, filters,
// tests, globals and methods, with resource limits.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>

#include "chat/jinja_internal.h"

namespace huginn::jinja {

namespace {

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;
  const Value* find(std::string_view n) const {
    for (const Frame* f = this; f; f = f->parent.get())
      for (auto it = f->vars.rbegin(); it != f->vars.rend(); ++it)
        if (it->first == n) return &it->second;
    return nullptr;
  }
  void set(const std::string& n, Value v) {
    for (auto& [k, x] : vars)
      if (k == n) {
        x = std::move(v);
        return;
      }
    vars.emplace_back(n, std::move(v));
  }
};
using FrameP = std::shared_ptr<Frame>;

enum class Flow { Normal, Break, Continue };

// raise_exception(msg): propagated with exactly the template's message.
struct RaisedError : Error {
  using Error::Error;
};

bool is_int_like(const Value& v) { return v.k == Value::K::Int || v.k == Value::K::Bool; }
std::int64_t as_int(const Value& v) { return v.k == Value::K::Bool ? (v.b ? 1 : 0) : v.i; }
double as_double(const Value& v) {
  return v.k == Value::K::Float ? v.f : static_cast<double>(as_int(v));
}

const char* const kFilters[] = {
    "trim",    "length",     "count",     "upper",   "lower",   "capitalize", "title",   "tojson", "default",
    "d",       "join",       "replace",   "string",  "int",     "float",      "first",   "last",   "items",
    "list",    "abs",        "round",     "map",     "select",  "reject",     "selectattr", "rejectattr",
    "reverse", "sort",       "unique",    "sum",     "min",     "max",        "indent",  "safe",   "e",
    "escape",  "dictsort",   "wordcount"};
const char* const kTests[] = {"defined", "undefined", "none",    "string",  "mapping", "iterable", "sequence",
                              "number",  "integer",   "float",   "boolean", "true",    "false",    "equalto",
                              "eq",      "ne",        "lt",      "gt",      "le",      "ge",       "in",
                              "odd",     "even",      "divisibleby", "callable", "lower", "upper", "sameas",
                              "greaterthan", "lessthan", "escaped", "filter", "test"};

}  // namespace

bool is_known_filter(std::string_view name) {
  return std::find(std::begin(kFilters), std::end(kFilters), name) != std::end(kFilters);
}
bool is_known_test(std::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

class Interp {
 public:
  Interp(const Limits& lim) : lim_(lim) {}
  ~Interp() {
    // Break reference cycles made through namespaces (ns.x = ns).
    for (auto& w : namespaces_)
      if (auto d = w.lock()) d->items.clear();
  }

  std::string run(const Program& prog, const nlohmann::ordered_json& vars) {
    globals_ = std::make_shared<Frame>();
    install_globals();
    if (vars.is_object())
      for (auto it = vars.begin(); it != vars.end(); ++it) globals_->set(it.key(), from_json(it.value()));
    std::string out;
    exec_body(prog.body, globals_, out);
    return out;
  }

  const Limits& lim_;
  FrameP globals_;
  std::vector<std::weak_ptr<Dict>> namespaces_;
  std::uint64_t steps_ = 0;
  std::size_t total_out_ = 0;
  int depth_ = 0;
  const Value* filter_input_ = nullptr;

  struct Guard {
    Interp& in;
    Guard(Interp& i, const Loc& l) : in(i) {
      if (++in.depth_ > in.lim_.max_depth) fail_at(l, "recursion too deep (limit " + std::to_string(in.lim_.max_depth) + ")");
    }
    ~Guard() { --in.depth_; }
  };

  void charge(const Loc& l, std::uint64_t n = 1) {
    steps_ += n;
    if (steps_ > lim_.max_steps)
      fail_at(l, "template evaluation exceeded the step limit (" + std::to_string(lim_.max_steps) + ")");
  }
  void check_size(const Loc& l, std::size_t bytes) {
    if (bytes > lim_.max_output_bytes)
      fail_at(l, "string too long (limit " + std::to_string(lim_.max_output_bytes) + " bytes)");
    charge(l, bytes / 64);
  }
  void check_items(const Loc& l, std::size_t n) {
    if (n > lim_.max_items) fail_at(l, "list too long (limit " + std::to_string(lim_.max_items) + " items)");
    charge(l, n / 8);
  }
  void emit(std::string& out, const std::string& s, const Loc& l) {
    total_out_ += s.size();
    if (total_out_ > lim_.max_output_bytes)
      fail_at(l, "rendered output too large (limit " + std::to_string(lim_.max_output_bytes) + " bytes)");
    charge(l, s.size() / 64);
    out += s;
  }

  // ------------------------------------------------------------ statements

  Flow exec_body(const Body& body, const FrameP& f, std::string& out) {
    for (const auto& s : body) {
      Flow fl = exec(*s, f, out);
      if (fl != Flow::Normal) return fl;
    }
    return Flow::Normal;
  }

  void bind(const Target& t, const Value& v, const FrameP& f, const Loc& l) {
    if (!t.attr.empty()) {
      const Value* ns = f->find(t.names[0]);
      if (!ns || ns->k != Value::K::Dict || !ns->d->is_namespace)
        fail_at(l, "cannot assign attribute '" + t.attr + "' on '" + t.names[0] + "': not a namespace");
      ns->d->set(Value::str(t.attr), v);
      return;
    }
    if (t.names.size() == 1) {
      f->set(t.names[0], v);
      return;
    }
    List items = iterate(v, l);
    if (items.size() != t.names.size())
      fail_at(l, items.size() > t.names.size() ? "too many values to unpack (expected " + std::to_string(t.names.size()) + ")"
                                               : "not enough values to unpack (expected " + std::to_string(t.names.size()) + ", got " + std::to_string(items.size()) + ")");
    for (std::size_t i = 0; i < items.size(); ++i) f->set(t.names[i], items[i]);
  }

  Flow exec(const Stmt& s, const FrameP& f, std::string& out) {
    Guard g(*this, s.loc);
    charge(s.loc);
    try {
      return exec_inner(s, f, out);
    } catch (const RaisedError&) {
      throw;
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.rfind("chat template", 0) == 0) throw;
      fail_at(s.loc, msg);
    }
  }

  Flow exec_inner(const Stmt& s, const FrameP& f, std::string& out) {
    switch (s.k) {
      case Stmt::K::Text: emit(out, s.text, s.loc); return Flow::Normal;
      case Stmt::K::Output: {
        Value v = eval(*s.expr, f);
        if (v.k == Value::K::Str) emit(out, v.s, s.loc);
        else emit(out, to_str(v), s.loc);
        return Flow::Normal;
      }
      case Stmt::K::If:
        for (const auto& [c, b] : s.branches)
          if (!c || truthy(eval(*c, f))) return exec_body(b, f, out);
        return Flow::Normal;
      case Stmt::K::For: return exec_for(s, f, out);
      case Stmt::K::Set: bind(s.target, eval(*s.expr, f), f, s.loc); return Flow::Normal;
      case Stmt::K::SetBlock: {
        std::string buf;
        auto inner = std::make_shared<Frame>();
        inner->parent = f;
        exec_body(s.body, inner, buf);
        Value v = Value::str(std::move(buf));
        if (s.expr) v = eval_with_input(*s.expr, f, v);
        bind(s.target, v, f, s.loc);
        return Flow::Normal;
      }
      case Stmt::K::Macro: {
        auto fn = std::make_shared<Func>();
        fn->name = s.name;
        const Stmt* sp = &s;
        fn->call = [sp](Interp& in, Args& a) { return in.call_macro(*sp, a); };
        f->set(s.name, Value::func(std::move(fn)));
        return Flow::Normal;
      }
      case Stmt::K::CallBlock: {
        const Expr& call = *s.expr;
        Value callee = eval(*call.kids[0], f);
        Args a = eval_args(call, f);
        auto cf = std::make_shared<Func>();
        cf->name = "caller";
        const Stmt* sp = &s;
        FrameP captured = f;
        cf->call = [sp, captured](Interp& in, Args& ca) {
          auto fr = std::make_shared<Frame>();
          fr->parent = captured;
          in.bind_params(*sp, "caller", ca, fr);
          std::string buf;
          in.exec_body(sp->body, fr, buf);
          return Value::str(std::move(buf));
        };
        a.kw.emplace_back("caller", Value::func(std::move(cf)));
        Value r = call_value(callee, a, call.loc);
        emit(out, to_str(r), s.loc);
        return Flow::Normal;
      }
      case Stmt::K::FilterBlock: {
        std::string buf;
        auto inner = std::make_shared<Frame>();
        inner->parent = f;
        exec_body(s.body, inner, buf);
        Value v = eval_with_input(*s.expr, f, Value::str(std::move(buf)));
        emit(out, to_str(v), s.loc);
        return Flow::Normal;
      }
      case Stmt::K::With: {
        auto inner = std::make_shared<Frame>();
        inner->parent = f;
        for (const auto& [t, e] : s.assigns) bind(t, eval(*e, f), inner, s.loc);
        return exec_body(s.body, inner, out);
      }
      case Stmt::K::Scope: return exec_body(s.body, f, out);
      case Stmt::K::Break: return Flow::Break;
      case Stmt::K::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  Value eval_with_input(const Expr& e, const FrameP& f, const Value& input) {
    const Value* saved = filter_input_;
    filter_input_ = &input;
    Value v = eval(e, f);
    filter_input_ = saved;
    return v;
  }

  Flow exec_for(const Stmt& s, const FrameP& f, std::string& out) {
    List items = iterate(eval(*s.expr, f), s.loc);
    if (s.cond) {
      List kept;
      for (auto& it : items) {
        charge(s.loc);
        auto tmp = std::make_shared<Frame>();
        tmp->parent = f;
        bind(s.target, it, tmp, s.loc);
        if (truthy(eval(*s.cond, tmp))) kept.push_back(std::move(it));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      auto inner = std::make_shared<Frame>();
      inner->parent = f;
      exec_body(s.else_body, inner, out);
      return Flow::Normal;
    }
    const std::int64_t n = static_cast<std::int64_t>(items.size());
    for (std::int64_t i = 0; i < n; ++i) {
      charge(s.loc);
      auto fr = std::make_shared<Frame>();
      fr->parent = f;
      auto loop = std::make_shared<Dict>();
      loop->is_loop = true;
      auto put = [&](const char* k, Value v) { loop->items.emplace_back(Value::str(k), std::move(v)); };
      put("index", Value::integer(i + 1));
      put("index0", Value::integer(i));
      put("revindex", Value::integer(n - i));
      put("revindex0", Value::integer(n - i - 1));
      put("first", Value::boolean(i == 0));
      put("last", Value::boolean(i == n - 1));
      put("length", Value::integer(n));
      put("depth", Value::integer(1));
      put("depth0", Value::integer(0));
      put("previtem", i > 0 ? items[static_cast<std::size_t>(i - 1)] : Value::undefined("there is no previous item"));
      put("nextitem", i + 1 < n ? items[static_cast<std::size_t>(i + 1)] : Value::undefined("there is no next item"));
      auto cyc = std::make_shared<Func>();
      cyc->name = "loop.cycle";
      cyc->call = [i](Interp&, Args& a) -> Value {
        if (a.pos.empty()) throw Error("chat template: loop.cycle() needs at least one argument");
        return a.pos[static_cast<std::size_t>(i) % a.pos.size()];
      };
      put("cycle", Value::func(std::move(cyc)));
      fr->vars.emplace_back("loop", Value::dict(std::move(loop)));
      bind(s.target, items[static_cast<std::size_t>(i)], fr, s.loc);
      Flow fl = exec_body(s.body, fr, out);
      if (fl == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void bind_params(const Stmt& m, const std::string& what, Args& a, const FrameP& fr) {
    if (a.pos.size() > m.params.size())
      fail_at(m.loc, what + " takes not more than " + std::to_string(m.params.size()) + " argument(s)");
    std::vector<bool> set(m.params.size(), false);
    for (std::size_t i = 0; i < a.pos.size(); ++i) {
      fr->set(m.params[i], a.pos[i]);
      set[i] = true;
    }
    for (auto& [k, v] : a.kw) {
      if (k == "caller") {
        fr->set("caller", v);
        continue;
      }
      auto it = std::find(m.params.begin(), m.params.end(), k);
      if (it == m.params.end()) fail_at(m.loc, what + " got an unexpected keyword argument '" + k + "'");
      std::size_t idx = static_cast<std::size_t>(it - m.params.begin());
      if (set[idx]) fail_at(m.loc, what + " got multiple values for argument '" + k + "'");
      fr->set(k, v);
      set[idx] = true;
    }
    for (std::size_t i = 0; i < m.params.size(); ++i) {
      if (set[i]) continue;
      if (m.defaults[i]) fr->set(m.params[i], eval(*m.defaults[i], fr));
      else fr->set(m.params[i], Value::undefined("parameter '" + m.params[i] + "' was not provided"));
    }
  }

  Value call_macro(const Stmt& m, Args& a) {
    Guard g(*this, m.loc);
    auto fr = std::make_shared<Frame>();
    fr->parent = globals_;
    bind_params(m, "macro '" + m.name + "'", a, fr);
    std::string buf;
    exec_body(m.body, fr, buf);
    return Value::str(std::move(buf));
  }

  // ------------------------------------------------------------ expressions

  Args eval_args(const Expr& e, const FrameP& f) {
    Args a;
    for (const auto& x : e.args) a.pos.push_back(eval(*x, f));
    for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x, f));
    return a;
  }

  Value call_value(const Value& callee, Args& a, const Loc& l) {
    if (callee.k == Value::K::Undefined) fail_at(l, undefined_msg(callee));
    if (callee.k != Value::K::Func) fail_at(l, "'" + type_name(callee) + "' object is not callable");
    charge(l);
    try {
      return callee.fn->call(*this, a);
    } catch (const RaisedError&) {
      throw;
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.rfind("chat template", 0) == 0) throw;
      fail_at(l, msg);
    }
  }

  static std::string undefined_msg(const Value& v) { return v.s.empty() ? "value is undefined" : v.s; }

  Value eval(const Expr& e, const FrameP& f) {
    Guard g(*this, e.loc);
    charge(e.loc);
    switch (e.k) {
      case Expr::K::Literal: return e.value;
      case Expr::K::Name: {
        const Value* v = f->find(e.name);
        if (!v) return Value::undefined("'" + e.name + "' is undefined");
        return *v;
      }
      case Expr::K::Attr: return get_attr(eval(*e.kids[0], f), e.name, e.loc);
      case Expr::K::Item: return get_item(eval(*e.kids[0], f), eval(*e.kids[1], f), e.loc);
      case Expr::K::Slice: {
        Value v = eval(*e.kids[0], f);
        Value a = e.kids[1] ? eval(*e.kids[1], f) : Value::none();
        Value b = e.kids[2] ? eval(*e.kids[2], f) : Value::none();
        Value c = e.kids[3] ? eval(*e.kids[3], f) : Value::none();
        return slice(v, a, b, c, e.loc);
      }
      case Expr::K::Call: {
        Value callee = eval(*e.kids[0], f);
        Args a = eval_args(e, f);
        return call_value(callee, a, e.loc);
      }
      case Expr::K::Filter: {
        Value v;
        if (e.kids[0]) v = eval(*e.kids[0], f);
        else if (filter_input_) v = *filter_input_;
        Args a = eval_args(e, f);
        return apply_filter(e.name, v, a, e.loc, f);
      }
      case Expr::K::Test: {
        Value v = eval(*e.kids[0], f);
        Args a = eval_args(e, f);
        bool r = apply_test(e.name, v, a, e.loc, f);
        return Value::boolean(e.negate ? !r : r);
      }
      case Expr::K::Unary: {
        Value v = eval(*e.kids[0], f);
        if (e.name == "not") return Value::boolean(!truthy(v));
        if (v.is_undef()) fail_at(e.loc, undefined_msg(v));
        if (!v.is_num()) fail_at(e.loc, "bad operand type for unary " + e.name + ": '" + type_name(v) + "'");
        if (e.name == "+") return v.k == Value::K::Bool ? Value::integer(as_int(v)) : v;
        if (v.k == Value::K::Float) return Value::flt(-v.f);
        if (as_int(v) == std::numeric_limits<std::int64_t>::min()) fail_at(e.loc, "integer overflow");
        return Value::integer(-as_int(v));
      }
      case Expr::K::Binary: return binary(e.name, eval(*e.kids[0], f), eval(*e.kids[1], f), e.loc);
      case Expr::K::And: {
        Value a = eval(*e.kids[0], f);
        return truthy(a) ? eval(*e.kids[1], f) : a;
      }
      case Expr::K::Or: {
        Value a = eval(*e.kids[0], f);
        return truthy(a) ? a : eval(*e.kids[1], f);
      }
      case Expr::K::Cond:
        if (truthy(eval(*e.kids[0], f))) return eval(*e.kids[1], f);
        if (e.kids[2]) return eval(*e.kids[2], f);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
      case Expr::K::ListLit:
      case Expr::K::TupleLit: {
        List l;
        for (const auto& k : e.kids) l.push_back(eval(*k, f));
        return Value::list(std::move(l), e.k == Expr::K::TupleLit);
      }
      case Expr::K::DictLit: {
        auto d = std::make_shared<Dict>();
        for (std::size_t i = 0; i + 1 < e.kids.size(); i += 2) {
          Value k = eval(*e.kids[i], f);
          if (k.k == Value::K::List && !k.tuple) fail_at(e.loc, "unhashable type: 'list'");
          if (k.k == Value::K::Dict) fail_at(e.loc, "unhashable type: 'dict'");
          d->set(std::move(k), eval(*e.kids[i + 1], f));
        }
        return Value::dict(std::move(d));
      }
    }
    return {};
  }

  List iterate(const Value& v, const Loc& l) {
    switch (v.k) {
      case Value::K::Undefined: return {};
      case Value::K::List: return *v.l;
      case Value::K::Dict: {
        if (v.d->is_namespace || v.d->is_loop) fail_at(l, "'" + type_name(v) + "' object is not iterable");
        List out;
        for (const auto& [k, x] : v.d->items) out.push_back(k);
        return out;
      }
      case Value::K::Str: {
        List out;
        std::string cur;
        for (char32_t c : utf8_decode(v.s)) {
          cur.clear();
          utf8_append(cur, c);
          out.push_back(Value::str(cur));
        }
        return out;
      }
      default: fail_at(l, "'" + type_name(v) + "' object is not iterable");
    }
  }

  Value bound(const std::string& name, std::function<Value(Interp&, Args&)> fn) {
    auto f = std::make_shared<Func>();
    f->name = name;
    f->call = std::move(fn);
    return Value::func(std::move(f));
  }

  Value get_attr(const Value& v, const std::string& name, const Loc& l) {
    if (v.is_undef()) fail_at(l, undefined_msg(v));
    if (v.k == Value::K::Dict) {
      if (!v.d->is_namespace && !v.d->is_loop) {
        Value m = method(v, name, l);
        if (!m.is_undef()) return m;
      }
      if (const Value* x = v.d->find(std::string_view(name))) return *x;
      return Value::undefined("'" + type_name(v) + " object' has no attribute '" + name + "'");
    }
    if (v.k == Value::K::Str) {
      Value m = method(v, name, l);
      if (!m.is_undef()) return m;
    }
    return Value::undefined("'" + type_name(v) + " object' has no attribute '" + name + "'");
  }

  Value get_item(const Value& v, const Value& key, const Loc& l) {
    if (v.is_undef()) fail_at(l, undefined_msg(v));
    if (v.k == Value::K::Dict) {
      if (const Value* x = v.d->find(key)) return *x;
      if (key.is_str()) return get_attr(v, key.s, l);
      return Value::undefined("'" + type_name(v) + " object' has no attribute " + repr(key));
    }
    if ((v.k == Value::K::List || v.k == Value::K::Str) && is_int_like(key)) {
      std::int64_t i = as_int(key);
      if (v.k == Value::K::List) {
        std::int64_t n = static_cast<std::int64_t>(v.l->size());
        if (i < 0) i += n;
        if (i < 0 || i >= n)
          return Value::undefined(type_name(v) + " object has no element " + std::to_string(as_int(key)));
        return (*v.l)[static_cast<std::size_t>(i)];
      }
      std::vector<char32_t> cps = utf8_decode(v.s);
      std::int64_t n = static_cast<std::int64_t>(cps.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined("str object has no element " + std::to_string(as_int(key)));
      return Value::str(utf8_encode(cps, static_cast<std::size_t>(i), static_cast<std::size_t>(i) + 1));
    }
    if (key.is_str()) return get_attr(v, key.s, l);
    return Value::undefined("'" + type_name(v) + " object' has no attribute " + repr(key));
  }

  Value slice(const Value& v, const Value& a, const Value& b, const Value& c, const Loc& l) {
    if (v.is_undef()) fail_at(l, undefined_msg(v));
    auto idx = [&](const Value& x, const char* what) -> std::optional<std::int64_t> {
      if (x.k == Value::K::None) return std::nullopt;
      if (!is_int_like(x)) fail_at(l, std::string("slice ") + what + " must be an integer or none");
      return as_int(x);
    };
    std::optional<std::int64_t> start = idx(a, "start"), stop = idx(b, "stop"), step = idx(c, "step");
    std::int64_t st = step.value_or(1);
    if (st == 0) fail_at(l, "slice step cannot be zero");
    if (st == std::numeric_limits<std::int64_t>::min()) st = -std::numeric_limits<std::int64_t>::max();
    auto run = [&](std::int64_t n) {
      std::vector<std::int64_t> ids;
      auto clamp = [&](std::optional<std::int64_t> x, std::int64_t def) -> std::int64_t {
        if (!x) return def;
        std::int64_t y = *x;
        if (y < 0) {
          y = y < -n ? (st < 0 ? -1 : 0) : y + n;
        } else if (y >= n) {
          y = st < 0 ? n - 1 : n;
        }
        return y;
      };
      std::int64_t s0 = clamp(start, st > 0 ? 0 : n - 1);
      std::int64_t s1 = clamp(stop, st > 0 ? n : -1);
      if (st > 0)
        for (std::int64_t i = s0; i < s1; i += st) {
          ids.push_back(i);
          if (s1 - i <= st) break;
        }
      else
        for (std::int64_t i = s0; i > s1; i += st) {
          ids.push_back(i);
          if (i - s1 <= -st) break;
        }
      return ids;
    };
    if (v.k == Value::K::List) {
      List out;
      for (auto i : run(static_cast<std::int64_t>(v.l->size()))) out.push_back((*v.l)[static_cast<std::size_t>(i)]);
      return Value::list(std::move(out), v.tuple);
    }
    if (v.k == Value::K::Str) {
      std::vector<char32_t> cps = utf8_decode(v.s);
      std::string out;
      for (auto i : run(static_cast<std::int64_t>(cps.size()))) utf8_append(out, cps[static_cast<std::size_t>(i)]);
      return Value::str(std::move(out));
    }
    return Value::undefined("'" + type_name(v) + "' object is not subscriptable");
  }

  static int cmp3(const Value& a, const Value& b, const std::string& op, const Loc& l) {
    if (a.is_num() && b.is_num()) {
      if (a.k != Value::K::Float && b.k != Value::K::Float) {
        std::int64_t x = as_int(a), y = as_int(b);
        return x < y ? -1 : x > y ? 1 : 0;
      }
      double x = as_double(a), y = as_double(b);
      if (std::isnan(x) || std::isnan(y)) return 2;  // unordered
      return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.is_str() && b.is_str()) {
      int c = a.s.compare(b.s);
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    if (a.k == Value::K::List && b.k == Value::K::List && a.tuple == b.tuple) {
      std::size_t n = std::min(a.l->size(), b.l->size());
      for (std::size_t i = 0; i < n; ++i) {
        if (equals((*a.l)[i], (*b.l)[i])) continue;
        return cmp3((*a.l)[i], (*b.l)[i], op, l);
      }
      return a.l->size() < b.l->size() ? -1 : a.l->size() > b.l->size() ? 1 : 0;
    }
    if (a.is_undef()) fail_at(l, undefined_msg(a));
    if (b.is_undef()) fail_at(l, undefined_msg(b));
    fail_at(l, "'" + op + "' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
  }

  bool contains(const Value& container, const Value& x, const Loc& l) {
    switch (container.k) {
      case Value::K::Undefined: return false;
      case Value::K::Str:
        if (!x.is_str()) fail_at(l, "'in <string>' requires string as left operand, not " + type_name(x));
        return container.s.find(x.s) != std::string::npos;
      case Value::K::List:
        for (const auto& y : *container.l)
          if (equals(y, x)) return true;
        return false;
      case Value::K::Dict: return container.d->find(x) != nullptr;
      default: fail_at(l, "argument of type '" + type_name(container) + "' is not iterable");
    }
  }

  Value binary(const std::string& op, const Value& a, const Value& b, const Loc& l) {
    if (op == "==") return Value::boolean(equals(a, b));
    if (op == "!=") return Value::boolean(!equals(a, b));
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      int c = cmp3(a, b, op, l);
      if (c == 2) return Value::boolean(false);
      bool r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
      return Value::boolean(r);
    }
    if (op == "in") return Value::boolean(contains(b, a, l));
    if (op == "not in") return Value::boolean(!contains(b, a, l));
    if (op == "~") {
      std::string s = to_str(a);
      s += to_str(b);
      check_size(l, s.size());
      return Value::str(std::move(s));
    }
    if (a.is_undef()) fail_at(l, undefined_msg(a));
    if (b.is_undef()) fail_at(l, undefined_msg(b));
    auto bad = [&]() -> Value {
      fail_at(l, "unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
    };
    if (op == "+") {
      if (a.is_str() && b.is_str()) {
        check_size(l, a.s.size() + b.s.size());
        return Value::str(a.s + b.s);
      }
      if (a.k == Value::K::List && b.k == Value::K::List && a.tuple == b.tuple) {
        check_items(l, a.l->size() + b.l->size());
        List r = *a.l;
        r.insert(r.end(), b.l->begin(), b.l->end());
        return Value::list(std::move(r), a.tuple);
      }
    }
    if (op == "*") {
      const Value* seq = a.is_str() || a.k == Value::K::List ? &a : b.is_str() || b.k == Value::K::List ? &b : nullptr;
      const Value* cnt = seq == &a ? &b : &a;
      if (seq && is_int_like(*cnt)) {
        std::int64_t n = std::max<std::int64_t>(0, as_int(*cnt));
        // An empty sequence stays empty however large n is: without this the
        // loops below ran n times appending nothing ('' * 2**31 hung; found
        // by template_fuzz). A non-empty one has n bounded by the limits.
        if (seq->is_str() ? seq->s.empty() : seq->l->empty()) n = 0;
        if (seq->is_str()) {
          if (n > 0 && seq->s.size() > lim_.max_output_bytes / static_cast<std::size_t>(n))
            check_size(l, lim_.max_output_bytes + 1);
          check_size(l, seq->s.size() * static_cast<std::size_t>(n));
          std::string r;
          for (std::int64_t i = 0; i < n; ++i) r += seq->s;
          return Value::str(std::move(r));
        }
        if (n > 0 && seq->l->size() > lim_.max_items / static_cast<std::size_t>(n)) check_items(l, lim_.max_items + 1);
        check_items(l, seq->l->size() * static_cast<std::size_t>(n));
        List r;
        for (std::int64_t i = 0; i < n; ++i) r.insert(r.end(), seq->l->begin(), seq->l->end());
        return Value::list(std::move(r), seq->tuple);
      }
    }
    if (!a.is_num() || !b.is_num()) return bad();
    bool ints = a.k != Value::K::Float && b.k != Value::K::Float;
    if (ints) {
      std::int64_t x = as_int(a), y = as_int(b), r = 0;
      if (op == "+") {
        if (__builtin_add_overflow(x, y, &r)) fail_at(l, "integer overflow");
        return Value::integer(r);
      }
      if (op == "-") {
        if (__builtin_sub_overflow(x, y, &r)) fail_at(l, "integer overflow");
        return Value::integer(r);
      }
      if (op == "*") {
        if (__builtin_mul_overflow(x, y, &r)) fail_at(l, "integer overflow");
        return Value::integer(r);
      }
      if (op == "/") {
        if (y == 0) fail_at(l, "division by zero");
        return Value::flt(static_cast<double>(x) / static_cast<double>(y));
      }
      if (op == "//" || op == "%") {
        if (y == 0) fail_at(l, op == "%" ? "integer modulo by zero" : "integer division or modulo by zero");
        if (x == std::numeric_limits<std::int64_t>::min() && y == -1) {
          if (op == "%") return Value::integer(0);
          fail_at(l, "integer overflow");
        }
        std::int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          q -= 1;
          m += y;
        }
        return Value::integer(op == "//" ? q : m);
      }
      if (op == "**") {
        if (y < 0) return Value::flt(std::pow(static_cast<double>(x), static_cast<double>(y)));
        std::int64_t res = 1, base = x;
        std::int64_t e = y;
        while (e > 0) {
          charge(l);
          if (e & 1)
            if (__builtin_mul_overflow(res, base, &res)) fail_at(l, "integer overflow");
          e >>= 1;
          if (e > 0 && __builtin_mul_overflow(base, base, &base)) fail_at(l, "integer overflow");
        }
        return Value::integer(res);
      }
    }
    double x = as_double(a), y = as_double(b);
    if (op == "+") return Value::flt(x + y);
    if (op == "-") return Value::flt(x - y);
    if (op == "*") return Value::flt(x * y);
    if (op == "/") {
      if (y == 0) fail_at(l, "float division by zero");
      return Value::flt(x / y);
    }
    if (op == "//" || op == "%") {
      if (y == 0) fail_at(l, "float modulo");
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      if (op == "%") return Value::flt(m);
      return Value::flt(std::floor((x - m) / y + 0.5) == (x - m) / y ? (x - m) / y : std::floor(x / y));
    }
    if (op == "**") return Value::flt(std::pow(x, y));
    return bad();
  }

  // ------------------------------------------------------------ args

  struct ArgReader {
    Args& a;
    const Loc& l;
    std::string fname;
    std::size_t max_pos = 0;
    bool has(std::size_t pos, const char* kw) const {
      if (pos < a.pos.size()) return true;
      for (const auto& [k, v] : a.kw)
        if (k == kw) return true;
      return false;
    }
    Value get(std::size_t pos, const char* kw, Value def) {
      max_pos = std::max(max_pos, pos + 1);
      for (auto it = a.kw.begin(); it != a.kw.end(); ++it)
        if (it->first == kw) {
          if (pos < a.pos.size()) fail_at(l, fname + "() got multiple values for argument '" + kw + "'");
          Value v = std::move(it->second);
          a.kw.erase(it);
          return v;
        }
      if (pos < a.pos.size()) return a.pos[pos];
      return def;
    }
    void done() {
      if (a.pos.size() > max_pos)
        fail_at(l, fname + "() takes at most " + std::to_string(max_pos) + " argument(s), got " +
                       std::to_string(a.pos.size()));
      if (!a.kw.empty()) fail_at(l, fname + "() got an unexpected keyword argument '" + a.kw.front().first + "'");
    }
  };

  std::string need_str(const Value& v, const Loc& l, const std::string& what) {
    if (!v.is_str()) fail_at(l, what + " must be a string, not " + type_name(v));
    return v.s;
  }

  // ------------------------------------------------------------ methods

  Value method(const Value& self, const std::string& name, const Loc&) {
    if (self.k == Value::K::Dict) {
      if (name == "items" || name == "keys" || name == "values") {
        return bound("dict." + name, [self, name](Interp& in, Args& a) -> Value {
          ArgReader r{a, Loc{}, name};
          r.done();
          List out;
          for (const auto& [k, v] : self.d->items) {
            if (name == "items") out.push_back(Value::list({k, v}, true));
            else out.push_back(name == "keys" ? k : v);
          }
          (void)in;
          return Value::list(std::move(out));
        });
      }
      if (name == "get") {
        return bound("dict.get", [self](Interp&, Args& a) -> Value {
          ArgReader r{a, Loc{}, "get"};
          Value k = r.get(0, "key", Value::undefined("missing key"));
          Value d = r.get(1, "default", Value::none());
          r.done();
          if (k.is_undef()) throw Error("get() missing required argument 'key'");
          const Value* x = self.d->find(k);
          return x ? *x : d;
        });
      }
      return {};
    }
    if (self.k != Value::K::Str) return {};
    static const char* const kStrMethods[] = {"strip", "lstrip", "rstrip", "startswith", "endswith", "split",
                                              "rsplit", "upper", "lower", "title", "capitalize", "replace",
                                              "find", "count", "join", "isdigit", "isalpha", "isspace",
                                              "isupper", "islower", "removeprefix", "removesuffix"};
    if (std::find(std::begin(kStrMethods), std::end(kStrMethods), name) == std::end(kStrMethods)) return {};
    return bound("str." + name, [self, name](Interp& in, Args& a) -> Value { return in.str_method(self.s, name, a); });
  }

  Value str_method(const std::string& s, const std::string& name, Args& a) {
    Loc l{};
    ArgReader r{a, l, name};
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      Value c = r.get(0, "chars", Value::none());
      r.done();
      std::string chars;
      if (!c.is_str() && c.k != Value::K::None) throw Error(name + " arg must be None or str");
      if (c.is_str()) chars = c.s;
      return Value::str(py_strip(s, c.is_str() ? &chars : nullptr, name != "rstrip", name != "lstrip"));
    }
    if (name == "startswith" || name == "endswith") {
      Value p = r.get(0, "prefix", Value::none());
      r.done();
      auto test = [&](const Value& x) {
        if (!x.is_str()) throw Error(name + " first arg must be str or a tuple of str, not " + type_name(x));
        if (x.s.size() > s.size()) return false;
        return name == "startswith" ? s.compare(0, x.s.size(), x.s) == 0
                                    : s.compare(s.size() - x.s.size(), x.s.size(), x.s) == 0;
      };
      if (p.k == Value::K::List) {
        for (const auto& x : *p.l)
          if (test(x)) return Value::boolean(true);
        return Value::boolean(false);
      }
      return Value::boolean(test(p));
    }
    if (name == "split" || name == "rsplit") {
      Value sep = r.get(0, "sep", Value::none());
      Value mx = r.get(1, "maxsplit", Value::integer(-1));
      r.done();
      if (!is_int_like(mx)) throw Error("split: maxsplit must be an integer");
      std::int64_t maxsplit = as_int(mx);
      List out;
      if (sep.k == Value::K::None) {
        std::vector<char32_t> cps = utf8_decode(s);
        std::vector<std::pair<std::size_t, std::size_t>> words;
        std::size_t i = 0, n = cps.size();
        while (i < n) {
          while (i < n && is_py_space(cps[i])) ++i;
          if (i >= n) break;
          std::size_t j = i;
          while (j < n && !is_py_space(cps[j])) ++j;
          words.emplace_back(i, j);
          i = j;
        }
        if (maxsplit < 0 || static_cast<std::size_t>(maxsplit) + 1 >= words.size()) {
          for (auto [b, e] : words) out.push_back(Value::str(utf8_encode(cps, b, e)));
        } else if (name == "split") {
          std::size_t k = static_cast<std::size_t>(maxsplit);
          for (std::size_t w = 0; w < k; ++w) out.push_back(Value::str(utf8_encode(cps, words[w].first, words[w].second)));
          out.push_back(Value::str(utf8_encode(cps, words[k].first, n)));
        } else {
          std::size_t k = words.size() - static_cast<std::size_t>(maxsplit);
          out.push_back(Value::str(utf8_encode(cps, 0, words[k - 1].second)));
          for (std::size_t w = k; w < words.size(); ++w)
            out.push_back(Value::str(utf8_encode(cps, words[w].first, words[w].second)));
        }
        return Value::list(std::move(out));
      }
      if (!sep.is_str()) throw Error("split: sep must be str or None, not " + type_name(sep));
      if (sep.s.empty()) throw Error("empty separator");
      std::vector<std::string> parts;
      std::size_t pos = 0;
      while (true) {
        std::size_t q = s.find(sep.s, pos);
        if (q == std::string::npos) break;
        parts.push_back(s.substr(pos, q - pos));
        pos = q + sep.s.size();
      }
      parts.push_back(s.substr(pos));
      if (maxsplit >= 0 && parts.size() > static_cast<std::size_t>(maxsplit) + 1) {
        std::size_t keep = static_cast<std::size_t>(maxsplit);
        std::vector<std::string> merged;
        if (name == "split") {
          merged.assign(parts.begin(), parts.begin() + static_cast<std::ptrdiff_t>(keep));
          std::string rest = parts[keep];
          for (std::size_t i = keep + 1; i < parts.size(); ++i) rest += sep.s + parts[i];
          merged.push_back(rest);
        } else {
          std::size_t first = parts.size() - keep;
          std::string rest = parts[0];
          for (std::size_t i = 1; i < first; ++i) rest += sep.s + parts[i];
          merged.push_back(rest);
          merged.insert(merged.end(), parts.begin() + static_cast<std::ptrdiff_t>(first), parts.end());
        }
        parts = std::move(merged);
      }
      for (auto& p : parts) out.push_back(Value::str(std::move(p)));
      return Value::list(std::move(out));
    }
    if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
      r.done();
      if (name == "upper") return Value::str(str_upper(s));
      if (name == "lower") return Value::str(str_lower(s));
      if (name == "capitalize") return Value::str(capitalize(s));
      // Python str.title(): uppercase after an uncased character
      std::string out;
      bool prev_cased = false;
      for (char32_t c : utf8_decode(s)) {
        bool cased = to_upper_cp(c) != c || to_lower_cp(c) != c;
        utf8_append(out, cased ? (prev_cased ? to_lower_cp(c) : to_upper_cp(c)) : c);
        prev_cased = cased;
      }
      return Value::str(out);
    }
    if (name == "replace") {
      Value o = r.get(0, "old", Value::none()), n = r.get(1, "new", Value::none()),
            c = r.get(2, "count", Value::integer(-1));
      r.done();
      if (!o.is_str() || !n.is_str() || !is_int_like(c)) throw Error("replace() arguments must be (str, str[, int])");
      return Value::str(replace(s, o.s, n.s, as_int(c), Loc{}));
    }
    if (name == "find" || name == "count") {
      Value sub = r.get(0, "sub", Value::none());
      r.done();
      if (!sub.is_str()) throw Error(name + "() argument must be str");
      if (name == "find") {
        std::size_t q = s.find(sub.s);
        return Value::integer(q == std::string::npos ? -1 : static_cast<std::int64_t>(utf8_length(s.substr(0, q))));
      }
      if (sub.s.empty()) return Value::integer(static_cast<std::int64_t>(utf8_length(s) + 1));
      std::int64_t cnt = 0;
      for (std::size_t q = s.find(sub.s); q != std::string::npos; q = s.find(sub.s, q + sub.s.size())) ++cnt;
      return Value::integer(cnt);
    }
    if (name == "removeprefix" || name == "removesuffix") {
      Value p = r.get(0, "prefix", Value::none());
      r.done();
      if (!p.is_str()) throw Error(name + "() argument must be str");
      if (name == "removeprefix")
        return Value::str(s.compare(0, p.s.size(), p.s) == 0 ? s.substr(p.s.size()) : s);
      if (p.s.size() <= s.size() && s.compare(s.size() - p.s.size(), p.s.size(), p.s) == 0)
        return Value::str(s.substr(0, s.size() - p.s.size()));
      return Value::str(s);
    }
    if (name == "join") {
      Value it = r.get(0, "iterable", Value::none());
      r.done();
      std::string out;
      bool first = true;
      for (const auto& x : iterate(it, l)) {
        if (!x.is_str()) throw Error("sequence item: expected str instance, " + type_name(x) + " found");
        if (!first) out += s;
        first = false;
        out += x.s;
        check_size(l, out.size());
      }
      return Value::str(std::move(out));
    }
    r.done();
    std::vector<char32_t> cps = utf8_decode(s);
    if (cps.empty()) return Value::boolean(false);
    bool all = true, any_cased = false;
    for (char32_t c : cps) {
      bool upper = to_lower_cp(c) != c, lower = to_upper_cp(c) != c;
      if (name == "isdigit") all = all && c >= '0' && c <= '9';
      else if (name == "isalpha") all = all && (upper || lower || c > 0x2E80);
      else if (name == "isspace") all = all && is_py_space(c);
      else if (name == "isupper") {
        if (lower) all = false;
        any_cased = any_cased || upper;
      } else if (name == "islower") {
        if (upper) all = false;
        any_cased = any_cased || lower;
      }
    }
    if (name == "isupper" || name == "islower") return Value::boolean(all && any_cased);
    return Value::boolean(all);
  }

  static std::string capitalize(const std::string& s) {
    std::string out;
    bool first = true;
    for (char32_t c : utf8_decode(s)) {
      utf8_append(out, first ? to_upper_cp(c) : to_lower_cp(c));
      first = false;
    }
    return out;
  }

  std::string replace(const std::string& s, const std::string& o, const std::string& n, std::int64_t count,
                      const Loc& l) {
    std::string out;
    if (o.empty()) {
      std::vector<char32_t> cps = utf8_decode(s);
      std::int64_t done = 0;
      for (std::size_t i = 0; i <= cps.size(); ++i) {
        if (count < 0 || done < count) {
          out += n;
          ++done;
        }
        if (i < cps.size()) utf8_append(out, cps[i]);
        check_size(l, out.size());
      }
      return out;
    }
    std::size_t pos = 0;
    std::int64_t done = 0;
    while (count < 0 || done < count) {
      std::size_t q = s.find(o, pos);
      if (q == std::string::npos) break;
      out.append(s, pos, q - pos);
      out += n;
      check_size(l, out.size());
      pos = q + o.size();
      ++done;
    }
    out.append(s, pos, std::string::npos);
    check_size(l, out.size());
    return out;
  }

  // ------------------------------------------------------------ filters

  Value attr_path(const Value& v, const Value& attr, const Loc& l) {
    if (is_int_like(attr)) return get_item(v, attr, l);
    if (!attr.is_str()) fail_at(l, "attribute must be a string or integer");
    Value cur = v;
    std::size_t pos = 0;
    while (true) {
      std::size_t dot = attr.s.find('.', pos);
      std::string part = attr.s.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
      bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (cur.is_undef()) return cur;
      cur = numeric && part.size() < 18 ? get_item(cur, Value::integer(std::stoll(part)), l) : get_item(cur, Value::str(part), l);
      if (dot == std::string::npos) return cur;
      pos = dot + 1;
    }
  }

  static std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return out;
  }

  std::int64_t length_of(const Value& v, const Loc& l) {
    switch (v.k) {
      case Value::K::Undefined: return 0;
      case Value::K::Str: return static_cast<std::int64_t>(utf8_length(v.s));
      case Value::K::List: return static_cast<std::int64_t>(v.l->size());
      case Value::K::Dict:
        if (v.d->is_loop || v.d->is_namespace) break;
        return static_cast<std::int64_t>(v.d->items.size());
      default: break;
    }
    fail_at(l, "object of type '" + type_name(v) + "' has no len()");
  }

  Value apply_filter(const std::string& name, const Value& v, Args& a, const Loc& l, const FrameP& f) {
    charge(l);
    ArgReader r{a, l, name};
    if (name == "trim") {
      Value chars = r.get(0, "chars", Value::none());
      r.done();
      std::string s = to_str(v);
      std::string cs = chars.is_str() ? chars.s : std::string();
      return Value::str(py_strip(s, chars.is_str() ? &cs : nullptr, true, true));
    }
    if (name == "length" || name == "count") {
      r.done();
      return Value::integer(length_of(v, l));
    }
    if (name == "upper" || name == "lower" || name == "capitalize") {
      r.done();
      std::string s = to_str(v);
      return Value::str(name == "upper" ? str_upper(s) : name == "lower" ? str_lower(s) : capitalize(s));
    }
    if (name == "title") {
      r.done();
      // jinja2: split on runs of [-\s({\[<]; upper first char, lower the rest.
      std::string out;
      bool at_start = true;
      for (char32_t c : utf8_decode(to_str(v))) {
        bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_py_space(c);
        if (sep) {
          utf8_append(out, c);
          at_start = true;
        } else {
          utf8_append(out, at_start ? to_upper_cp(c) : to_lower_cp(c));
          at_start = false;
        }
      }
      return Value::str(out);
    }
    if (name == "tojson") {
      Value ea = r.get(0, "ensure_ascii", Value::boolean(false));
      Value indent = r.get(1, "indent", Value::none());
      Value seps = r.get(2, "separators", Value::none());
      Value sk = r.get(3, "sort_keys", Value::boolean(false));
      r.done();
      int ind = -1;
      if (is_int_like(indent)) ind = static_cast<int>(std::clamp<std::int64_t>(as_int(indent), 0, 64));
      else if (indent.k != Value::K::None) fail_at(l, "tojson: indent must be an integer");
      std::string isep = ind >= 0 ? "," : ", ", ksep = ": ";
      if (seps.k == Value::K::List && seps.l->size() == 2 && (*seps.l)[0].is_str() && (*seps.l)[1].is_str()) {
        isep = (*seps.l)[0].s;
        ksep = (*seps.l)[1].s;
      } else if (seps.k != Value::K::None) {
        fail_at(l, "tojson: separators must be a pair of strings");
      }
      try {
        std::string s = to_json(v, truthy(ea), ind, isep, ksep, truthy(sk));
        check_size(l, s.size());
        return Value::str(std::move(s));
      } catch (const Error& e) {
        fail_at(l, e.what());
      }
    }
    if (name == "default" || name == "d") {
      Value def = r.get(0, "default_value", Value::str(""));
      Value boolean = r.get(1, "boolean", Value::boolean(false));
      r.done();
      if (v.is_undef() || (truthy(boolean) && !truthy(v))) return def;
      return v;
    }
    if (name == "join") {
      Value sep = r.get(0, "d", Value::str(""));
      Value attr = r.get(1, "attribute", Value::none());
      r.done();
      std::string out, s = to_str(sep);
      bool first = true;
      for (const auto& x : iterate(v, l)) {
        if (!first) out += s;
        first = false;
        out += to_str(attr.k == Value::K::None ? x : attr_path(x, attr, l));
        check_size(l, out.size());
      }
      return Value::str(std::move(out));
    }
    if (name == "replace") {
      Value o = r.get(0, "old", Value::undefined("")), n = r.get(1, "new", Value::undefined("")),
            c = r.get(2, "count", Value::none());
      r.done();
      if (o.is_undef() || n.is_undef()) fail_at(l, "replace() needs 'old' and 'new' arguments");
      if (c.k != Value::K::None && !is_int_like(c)) fail_at(l, "replace(): count must be an integer");
      return Value::str(replace(to_str(v), to_str(o), to_str(n), c.k == Value::K::None ? -1 : as_int(c), l));
    }
    if (name == "string") {
      r.done();
      return Value::str(to_str(v));
    }
    if (name == "int") {
      Value def = r.get(0, "default", Value::integer(0));
      Value base = r.get(1, "base", Value::integer(10));
      r.done();
      return to_int(v, def, is_int_like(base) ? as_int(base) : 10);
    }
    if (name == "float") {
      Value def = r.get(0, "default", Value::flt(0.0));
      r.done();
      if (v.k == Value::K::Float) return v;
      if (v.is_num()) return Value::flt(as_double(v));
      if (v.is_str()) {
        std::string t = py_strip(v.s, nullptr, true, true);
        char* end = nullptr;
        double d = std::strtod(t.c_str(), &end);
        if (!t.empty() && end && *end == '\0') return Value::flt(d);
      }
      return def;
    }
    if (name == "first" || name == "last") {
      r.done();
      if (v.k == Value::K::Dict && (v.d->is_namespace || v.d->is_loop)) fail_at(l, "object is not iterable");
      List items = iterate(v, l);
      if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
      return name == "first" ? items.front() : items.back();
    }
    if (name == "items") {
      r.done();
      if (v.is_undef()) return Value::list({});
      if (v.k != Value::K::Dict || v.d->is_namespace || v.d->is_loop)
        fail_at(l, "items filter: can only get item pairs from a mapping, not " + type_name(v));
      List out;
      for (const auto& [k, x] : v.d->items) out.push_back(Value::list({k, x}, true));
      return Value::list(std::move(out));
    }
    if (name == "list") {
      r.done();
      return Value::list(iterate(v, l));
    }
    if (name == "abs") {
      r.done();
      if (v.k == Value::K::Float) return Value::flt(std::fabs(v.f));
      if (is_int_like(v)) {
        if (as_int(v) == std::numeric_limits<std::int64_t>::min()) fail_at(l, "integer overflow");
        return Value::integer(std::llabs(as_int(v)));
      }
      fail_at(l, "bad operand type for abs(): '" + type_name(v) + "'");
    }
    if (name == "round") {
      Value prec = r.get(0, "precision", Value::integer(0));
      Value method = r.get(1, "method", Value::str("common"));
      r.done();
      if (!v.is_num()) fail_at(l, "round: value must be a number");
      double x = as_double(v);
      std::int64_t p = is_int_like(prec) ? std::clamp<std::int64_t>(as_int(prec), -300, 300) : 0;
      double m = std::pow(10.0, static_cast<double>(p));
      double y = x * m;
      if (method.is_str() && method.s == "floor") y = std::floor(y);
      else if (method.is_str() && method.s == "ceil") y = std::ceil(y);
      else y = std::round(y);
      return Value::flt(y / m);
    }
    if (name == "map") {
      List items = iterate(v, l);
      List out;
      if (r.has(0, "attribute") && a.pos.empty()) {
        Value attr = r.get(0, "attribute", Value::none());
        Value def = r.get(1, "default", Value::undefined(""));
        r.done();
        for (const auto& x : items) {
          Value y = attr_path(x, attr, l);
          out.push_back(y.is_undef() && !def.is_undef() ? def : y);
        }
        return Value::list(std::move(out));
      }
      if (a.pos.empty()) fail_at(l, "map() needs a filter name or attribute=");
      Value fname = a.pos[0];
      if (!fname.is_str() || !is_known_filter(fname.s)) fail_at(l, "map(): unknown filter " + repr(fname));
      Args rest;
      rest.pos.assign(a.pos.begin() + 1, a.pos.end());
      rest.kw = a.kw;
      for (const auto& x : items) {
        Args copy = rest;
        out.push_back(apply_filter(fname.s, x, copy, l, f));
      }
      return Value::list(std::move(out));
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
      bool attr_mode = name == "selectattr" || name == "rejectattr";
      bool want = name == "select" || name == "selectattr";
      List items = iterate(v, l);
      std::size_t k = 0;
      Value attr;
      if (attr_mode) {
        if (a.pos.empty()) fail_at(l, name + "() needs an attribute name");
        attr = a.pos[k++];
      }
      std::string test;
      if (k < a.pos.size()) {
        if (!a.pos[k].is_str() || !is_known_test(a.pos[k].s)) fail_at(l, name + "(): unknown test " + repr(a.pos[k]));
        test = a.pos[k++].s;
      }
      Args targs;
      targs.pos.assign(a.pos.begin() + static_cast<std::ptrdiff_t>(k), a.pos.end());
      targs.kw = a.kw;
      List out;
      for (const auto& x : items) {
        Value y = attr_mode ? attr_path(x, attr, l) : x;
        Args copy = targs;
        bool ok = test.empty() ? truthy(y) : apply_test(test, y, copy, l, f);
        if (ok == want) out.push_back(x);
      }
      return Value::list(std::move(out));
    }
    if (name == "reverse") {
      r.done();
      if (v.is_str()) {
        std::vector<char32_t> cps = utf8_decode(v.s);
        std::reverse(cps.begin(), cps.end());
        return Value::str(utf8_encode(cps, 0, cps.size()));
      }
      List items = iterate(v, l);
      std::reverse(items.begin(), items.end());
      return Value::list(std::move(items));
    }
    if (name == "sort" || name == "unique" || name == "min" || name == "max") {
      bool is_sort = name == "sort";
      Value rev = is_sort ? r.get(0, "reverse", Value::boolean(false)) : Value::boolean(false);
      Value cs = r.get(is_sort ? 1 : 0, "case_sensitive", Value::boolean(false));
      Value attr = r.get(is_sort ? 2 : 1, "attribute", Value::none());
      r.done();
      List items = iterate(v, l);
      auto key = [&](const Value& x) {
        Value y = attr.k == Value::K::None ? x : attr_path(x, attr, l);
        if (!truthy(cs) && y.is_str()) return Value::str(str_lower(y.s));
        return y;
      };
      if (name == "unique") {
        List out, keys;
        for (const auto& x : items) {
          Value kx = key(x);
          bool seen = false;
          for (const auto& y : keys)
            if (equals(y, kx)) seen = true;
          if (!seen) {
            keys.push_back(kx);
            out.push_back(x);
          }
          charge(l, keys.size() / 8);
        }
        return Value::list(std::move(out));
      }
      charge(l, items.size());
      if (name == "min" || name == "max") {
        if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
        std::size_t best = 0;
        for (std::size_t i = 1; i < items.size(); ++i) {
          int c = cmp3(key(items[i]), key(items[best]), "<", l);
          if (c == 2) continue;
          if ((name == "min" && c < 0) || (name == "max" && c > 0)) best = i;
        }
        return items[best];
      }
      bool desc = truthy(rev);
      std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        int c = cmp3(key(x), key(y), "<", l);
        return desc ? c == 1 : c == -1;
      });
      return Value::list(std::move(items));
    }
    if (name == "sum") {
      Value attr = r.get(0, "attribute", Value::none());
      Value acc = r.get(1, "start", Value::integer(0));
      r.done();
      for (const auto& x : iterate(v, l)) acc = binary("+", acc, attr.k == Value::K::None ? x : attr_path(x, attr, l), l);
      return acc;
    }
    if (name == "indent") {
      Value width = r.get(0, "width", Value::integer(4));
      Value first = r.get(1, "first", Value::boolean(false));
      Value blank = r.get(2, "blank", Value::boolean(false));
      r.done();
      std::string pad;
      if (width.is_str()) pad = width.s;
      else if (is_int_like(width)) pad.assign(static_cast<std::size_t>(std::clamp<std::int64_t>(as_int(width), 0, 1024)), ' ');
      else fail_at(l, "indent: width must be an integer or string");
      std::string s = to_str(v), out;
      std::vector<std::string> lines;
      std::size_t pos = 0;
      while (true) {
        std::size_t q = s.find('\n', pos);
        if (q == std::string::npos) {
          lines.push_back(s.substr(pos));
          break;
        }
        lines.push_back(s.substr(pos, q - pos));
        pos = q + 1;
      }
      for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) out += '\n';
        bool blank_line = py_strip(lines[i], nullptr, true, true).empty();
        if ((i > 0 || truthy(first)) && (truthy(blank) || !blank_line)) out += pad;
        out += lines[i];
        check_size(l, out.size());
      }
      return Value::str(out);
    }
    if (name == "safe") {
      r.done();
      return v.is_undef() ? Value::str("") : v;
    }
    if (name == "e" || name == "escape") {
      r.done();
      return Value::str(html_escape(to_str(v)));
    }
    if (name == "wordcount") {
      r.done();
      Args none;
      Value parts = str_method(to_str(v), "split", none);
      return Value::integer(static_cast<std::int64_t>(parts.l->size()));
    }
    if (name == "dictsort") {
      Value cs = r.get(0, "case_sensitive", Value::boolean(false));
      Value by = r.get(1, "by", Value::str("key"));
      Value rev = r.get(2, "reverse", Value::boolean(false));
      r.done();
      if (v.k != Value::K::Dict) fail_at(l, "dictsort: value must be a mapping");
      List items;
      for (const auto& [k, x] : v.d->items) items.push_back(Value::list({k, x}, true));
      std::size_t idx = by.is_str() && by.s == "value" ? 1 : 0;
      bool desc = truthy(rev);
      std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        Value kx = (*x.l)[idx], ky = (*y.l)[idx];
        if (!truthy(cs)) {
          if (kx.is_str()) kx = Value::str(str_lower(kx.s));
          if (ky.is_str()) ky = Value::str(str_lower(ky.s));
        }
        int c = cmp3(kx, ky, "<", l);
        return desc ? c == 1 : c == -1;
      });
      return Value::list(std::move(items));
    }
    fail_at(l, "filter '" + name + "' is not supported");
  }

  Value to_int(const Value& v, const Value& def, std::int64_t base) {
    if (is_int_like(v)) return Value::integer(as_int(v));
    if (v.k == Value::K::Float) {
      if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return def;
      return Value::integer(static_cast<std::int64_t>(v.f));
    }
    if (v.is_str()) {
      std::string t = py_strip(v.s, nullptr, true, true);
      std::string digits;
      for (char c : t)
        if (c != '_') digits += c;
      if (!digits.empty() && base >= 2 && base <= 36) {
        errno = 0;
        char* end = nullptr;
        long long x = std::strtoll(digits.c_str(), &end, static_cast<int>(base));
        if (errno == 0 && end && *end == '\0') return Value::integer(x);
        char* fend = nullptr;
        double d = std::strtod(t.c_str(), &fend);
        if (base == 10 && fend && *fend == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18)
          return Value::integer(static_cast<std::int64_t>(d));
      }
    }
    return def;
  }

  // ------------------------------------------------------------ tests

  bool apply_test(const std::string& name, const Value& v, Args& a, const Loc& l, const FrameP&) {
    charge(l);
    ArgReader r{a, l, name};
    auto arg = [&]() {
      Value x = r.get(0, "other", Value::undefined("missing argument"));
      r.done();
      return x;
    };
    if (name == "defined") return r.done(), !v.is_undef();
    if (name == "undefined") return r.done(), v.is_undef();
    if (name == "none") return r.done(), v.k == Value::K::None;
    if (name == "string") return r.done(), v.is_str();
    if (name == "mapping") return r.done(), v.k == Value::K::Dict && !v.d->is_namespace && !v.d->is_loop;
    if (name == "iterable")
      return r.done(), v.is_undef() || v.is_str() || v.k == Value::K::List ||
                           (v.k == Value::K::Dict && !v.d->is_namespace && !v.d->is_loop);
    if (name == "sequence")
      return r.done(), v.is_str() || v.k == Value::K::List || (v.k == Value::K::Dict && !v.d->is_namespace && !v.d->is_loop);
    if (name == "number") return r.done(), v.is_num();
    if (name == "integer") return r.done(), v.k == Value::K::Int;
    if (name == "float") return r.done(), v.k == Value::K::Float;
    if (name == "boolean") return r.done(), v.k == Value::K::Bool;
    if (name == "true") return r.done(), v.k == Value::K::Bool && v.b;
    if (name == "false") return r.done(), v.k == Value::K::Bool && !v.b;
    if (name == "callable") return r.done(), v.k == Value::K::Func;
    if (name == "escaped") return r.done(), false;
    if (name == "lower" || name == "upper") {
      r.done();
      std::string s = to_str(v);
      return s == (name == "lower" ? str_lower(s) : str_upper(s));
    }
    if (name == "odd" || name == "even") {
      r.done();
      if (!is_int_like(v)) fail_at(l, "test '" + name + "' needs an integer, got " + type_name(v));
      std::int64_t x = as_int(v) % 2;
      return name == "odd" ? x != 0 : x == 0;
    }
    if (name == "divisibleby") {
      Value n = r.get(0, "num", Value::undefined("missing argument"));
      r.done();
      if (!is_int_like(v) || !is_int_like(n)) fail_at(l, "divisibleby needs integers");
      if (as_int(n) == 0) fail_at(l, "integer modulo by zero");
      if (as_int(n) == -1) return true;
      return as_int(v) % as_int(n) == 0;
    }
    if (name == "equalto" || name == "eq") return equals(v, arg());
    if (name == "ne") return !equals(v, arg());
    if (name == "sameas") {
      Value o = arg();
      if (v.k != o.k) return false;
      if (v.k == Value::K::List) return v.l == o.l;
      if (v.k == Value::K::Dict) return v.d == o.d;
      if (v.k == Value::K::Func) return v.fn == o.fn;
      return equals(v, o);
    }
    if (name == "lt" || name == "lessthan") return binary("<", v, arg(), l).b;
    if (name == "gt" || name == "greaterthan") return binary(">", v, arg(), l).b;
    if (name == "le") return binary("<=", v, arg(), l).b;
    if (name == "ge") return binary(">=", v, arg(), l).b;
    if (name == "in") return contains(arg(), v, l);
    if (name == "filter") return r.done(), v.is_str() && is_known_filter(v.s);
    if (name == "test") return r.done(), v.is_str() && is_known_test(v.s);
    fail_at(l, "test '" + name + "' is not supported");
  }

  // ------------------------------------------------------------ globals

  void install_globals() {
    auto def = [&](const char* name, std::function<Value(Interp&, Args&)> fn) {
      globals_->set(name, bound(name, std::move(fn)));
    };
    def("raise_exception", [](Interp&, Args& a) -> Value {
      std::string msg = a.pos.empty() ? std::string() : to_str(a.pos[0]);
      throw RaisedError(msg);
    });
    def("namespace", [](Interp& in, Args& a) -> Value {
      auto d = std::make_shared<Dict>();
      d->is_namespace = true;
      for (const auto& p : a.pos) {
        if (p.k != Value::K::Dict) throw Error("namespace() positional argument must be a mapping");
        for (const auto& kv : p.d->items) d->set(kv.first, kv.second);
      }
      for (auto& [k, v] : a.kw) d->set(Value::str(k), v);
      in.namespaces_.push_back(d);
      return Value::dict(std::move(d));
    });
    def("dict", [](Interp&, Args& a) -> Value {
      auto d = std::make_shared<Dict>();
      for (const auto& p : a.pos) {
        if (p.k != Value::K::Dict) throw Error("dict() positional argument must be a mapping");
        for (const auto& kv : p.d->items) d->set(kv.first, kv.second);
      }
      for (auto& [k, v] : a.kw) d->set(Value::str(k), v);
      return Value::dict(std::move(d));
    });
    def("range", [](Interp& in, Args& a) -> Value {
      if (!a.kw.empty() || a.pos.empty() || a.pos.size() > 3) throw Error("range() takes 1 to 3 integer arguments");
      for (const auto& x : a.pos)
        if (!is_int_like(x)) throw Error("range() arguments must be integers, not " + type_name(x));
      std::int64_t start = 0, stop, step = 1;
      if (a.pos.size() == 1) stop = as_int(a.pos[0]);
      else {
        start = as_int(a.pos[0]);
        stop = as_int(a.pos[1]);
        if (a.pos.size() == 3) step = as_int(a.pos[2]);
      }
      if (step == 0) throw Error("range() arg 3 must not be zero");
      // element count without overflow
      long double cnt = 0;
      if (step > 0 && stop > start) cnt = std::ceil((static_cast<long double>(stop) - start) / step);
      if (step < 0 && stop < start) cnt = std::ceil((static_cast<long double>(start) - stop) / -static_cast<long double>(step));
      if (cnt > static_cast<long double>(in.lim_.max_items))
        throw Error("range() too long (limit " + std::to_string(in.lim_.max_items) + " items)");
      List out;
      std::size_t n = static_cast<std::size_t>(cnt);
      in.check_items(Loc{}, n);
      out.reserve(n);
      std::int64_t x = start;
      for (std::size_t i = 0; i < n; ++i) {
        out.push_back(Value::integer(x));
        if (i + 1 < n) x += step;
      }
      return Value::list(std::move(out));
    });
    def("strftime_now", [](Interp&, Args& a) -> Value {
      if (a.pos.empty() || !a.pos[0].is_str()) throw Error("strftime_now() needs a format string");
      std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[512];
      std::size_t n = std::strftime(buf, sizeof buf, a.pos[0].s.c_str(), &tm);
      return Value::str(std::string(buf, n));
    });
  }
};

std::string execute(const Program& prog, const nlohmann::ordered_json& vars, const Limits& limits) {
  Interp in(limits);
  return in.run(prog, vars);
}

// ---------------------------------------------------------------- Template

Template::Template(std::string_view source, Limits limits)
    : prog_(std::make_unique<Program>(parse(source, limits))), limits_(limits) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& variables) const {
  return execute(*prog_, variables, limits_);
}

}  // namespace huginn::jinja
