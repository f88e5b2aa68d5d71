// Internals of the Jinja interpreter: values, AST, helpers. Not public API.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/jinja.h"
#include "huginn/error.h"

namespace huginn::jinja {

struct Value;
struct Dict;
struct Func;
class Interp;
using List = std::vector<Value>;

struct Value {
  enum class K : std::uint8_t { Undefined, None, Bool, Int, Float, Str, List, Dict, Func };
  K k = K::Undefined;
  bool tuple = false;  // a List shown as a tuple
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
  std::string s;  // Str payload; for Undefined: the error text used when it is misused
  std::shared_ptr<List> l;
  std::shared_ptr<Dict> d;
  std::shared_ptr<Func> fn;

  static Value undefined(std::string hint) {
    Value v;
    v.s = std::move(hint);
    return v;
  }
  static Value none() {
    Value v;
    v.k = K::None;
    return v;
  }
  static Value boolean(bool x) {
    Value v;
    v.k = K::Bool;
    v.b = x;
    return v;
  }
  static Value integer(std::int64_t x) {
    Value v;
    v.k = K::Int;
    v.i = x;
    return v;
  }
  static Value flt(double x) {
    Value v;
    v.k = K::Float;
    v.f = x;
    return v;
  }
  static Value str(std::string x) {
    Value v;
    v.k = K::Str;
    v.s = std::move(x);
    return v;
  }
  static Value list(List x, bool is_tuple = false) {
    Value v;
    v.k = K::List;
    v.tuple = is_tuple;
    v.l = std::make_shared<List>(std::move(x));
    return v;
  }
  static Value dict(std::shared_ptr<Dict> x) {
    Value v;
    v.k = K::Dict;
    v.d = std::move(x);
    return v;
  }
  static Value func(std::shared_ptr<Func> x) {
    Value v;
    v.k = K::Func;
    v.fn = std::move(x);
    return v;
  }

  bool is_undef() const { return k == K::Undefined; }
  bool is_str() const { return k == K::Str; }
  bool is_num() const { return k == K::Int || k == K::Float || k == K::Bool; }
};

struct Dict {
  bool is_namespace = false;  // namespace(): attribute assignment allowed
  bool is_loop = false;       // the `loop` variable
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value v);
};

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

struct Func {
  std::string name;
  std::function<Value(Interp&, Args&)> call;
};

// ---- helpers (jinja_value.cc) ----
std::string type_name(const Value& v);
bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// Python str(); Undefined renders as "".
std::string to_str(const Value& v);
// Python repr().
std::string repr(const Value& v);
// json.dumps(v, ensure_ascii, indent (<0: none), separators, sort_keys).
std::string to_json(const Value& v, bool ensure_ascii, int indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys);
std::string float_repr(double d);
Value from_json(const nlohmann::ordered_json& j);

// UTF-8
std::vector<char32_t> utf8_decode(std::string_view s);
void utf8_append(std::string& out, char32_t c);
std::string utf8_encode(const std::vector<char32_t>& cps, std::size_t begin, std::size_t end);
std::size_t utf8_length(std::string_view s);
char32_t to_upper_cp(char32_t c);
char32_t to_lower_cp(char32_t c);
std::string str_upper(std::string_view s);
std::string str_lower(std::string_view s);
// Python str.strip/lstrip/rstrip; chars == nullptr: whitespace.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);

// ---- AST ----
struct Loc {
  int line = 1, col = 1;
};

[[noreturn]] void fail_at(const Loc& loc, const std::string& msg);

struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
  enum class K {
    Literal,  // value
    Name,     // name
    Attr,     // a.name
    Item,     // a[b]
    Slice,    // a[b:c:d] (children may be null)
    Call,     // a(args)
    Filter,   // a | name(args)   (a null for filter blocks)
    Test,     // a is [not] name(args)
    Unary,    // op a  ("-", "+", "not")
    Binary,   // a op b
    And,
    Or,
    Cond,  // b if a else c -> kids: cond, then, else(nullable)
    ListLit,
    TupleLit,
    DictLit,  // kids alternate key, value
  };
  K k;
  Loc loc;
  int depth = 1;
  std::string name;  // Name/Attr/Filter/Test name, operator
  bool negate = false;
  Value value;
  std::vector<ExprP> kids;                             // operands
  std::vector<ExprP> args;                             // call args (positional)
  std::vector<std::pair<std::string, ExprP>> kwargs;   // call args (keyword)
};

struct Stmt;
using StmtP = std::unique_ptr<Stmt>;
using Body = std::vector<StmtP>;

struct Target {  // assignment target: name, ns.attr, or tuple of names
  std::vector<std::string> names;
  std::string attr;  // non-empty: names[0].attr
};

struct Stmt {
  enum class K { Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Break, Continue, With, Scope };
  K k;
  Loc loc;
  std::string text;                        // Text
  ExprP expr;                              // Output/Set value/For iterable/CallBlock call/FilterBlock filter
  ExprP cond;                              // For filter
  std::vector<std::pair<ExprP, Body>> branches;  // If: (cond or null for else, body)
  Target target;                           // Set/SetBlock/For
  Body body, else_body;
  std::string name;                        // Macro name
  std::vector<std::string> params;         // Macro/CallBlock params
  std::vector<ExprP> defaults;             // aligned with params (null: required)
  std::vector<std::pair<Target, ExprP>> assigns;  // With
};

struct Program {
  Body body;
};

Program parse(std::string_view source, const Limits& limits);
std::string execute(const Program& prog, const nlohmann::ordered_json& vars, const Limits& limits);

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

}  // namespace huginn::jinja
