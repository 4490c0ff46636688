#include "common/resources/selector/selector.h"

#include <algorithm>
#include <vector>

#include "common/base/status_macros.h"

namespace calico::resources::selector {

// The AST. One struct with a tag keeps evaluation and printing in two small switches.
class Node {
 public:
  enum class Op { kAll, kGlobal, kHas, kEq, kNe, kIn, kNotIn, kContains, kStartsWith, kEndsWith,
                  kNot, kAnd, kOr };
  Op op = Op::kAll;
  std::string label;
  std::string value;
  std::vector<std::string> set;  // sorted, unique (kIn/kNotIn)
  std::vector<std::shared_ptr<const Node>> children;
};

namespace {

using NodeP = std::shared_ptr<const Node>;
using Op = Node::Op;

bool IsLabelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '/' || c == '-';
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Upstream prints literals in double quotes unless the value holds one (there are no escapes).
std::string Quote(const std::string& v) {
  char q = v.find('"') == std::string::npos ? '"' : '\'';
  return std::string(1, q) + v + std::string(1, q);
}

std::string Print(const Node& n) {
  switch (n.op) {
    case Op::kAll: return "all()";
    case Op::kGlobal: return "global()";
    case Op::kHas: return "has(" + n.label + ")";
    case Op::kEq: return n.label + " == " + Quote(n.value);
    case Op::kNe: return n.label + " != " + Quote(n.value);
    case Op::kContains: return n.label + " contains " + Quote(n.value);
    case Op::kStartsWith: return n.label + " starts with " + Quote(n.value);
    case Op::kEndsWith: return n.label + " ends with " + Quote(n.value);
    case Op::kIn:
    case Op::kNotIn: {
      std::string out = n.label + (n.op == Op::kIn ? " in {" : " not in {");
      for (size_t i = 0; i < n.set.size(); ++i) out += (i ? ", " : "") + Quote(n.set[i]);
      return out + "}";
    }
    case Op::kNot: return "!" + Print(*n.children[0]);
    case Op::kAnd:
    case Op::kOr: {
      std::string out = "(";
      for (size_t i = 0; i < n.children.size(); ++i) {
        if (i) out += n.op == Op::kAnd ? " && " : " || ";
        out += Print(*n.children[i]);
      }
      return out + ")";
    }
  }
  return "";
}

bool Eval(const Node& n, const Labels& labels) {
  auto it = labels.find(n.label);
  bool has = it != labels.end();
  switch (n.op) {
    case Op::kAll: return true;
    // global() only means something as a namespaceSelector ("not namespaced"); consumers that
    // care check for it before matching. As a label match it selects everything, as upstream.
    case Op::kGlobal: return true;
    case Op::kHas: return has;
    case Op::kEq: return has && it->second == n.value;
    case Op::kNe: return !has || it->second != n.value;
    case Op::kIn: return has && std::binary_search(n.set.begin(), n.set.end(), it->second);
    case Op::kNotIn: return !has || !std::binary_search(n.set.begin(), n.set.end(), it->second);
    case Op::kContains: return has && it->second.find(n.value) != std::string::npos;
    case Op::kStartsWith: return has && it->second.starts_with(n.value);
    case Op::kEndsWith: return has && it->second.ends_with(n.value);
    case Op::kNot: return !Eval(*n.children[0], labels);
    case Op::kAnd:
      for (const NodeP& c : n.children) {
        if (!Eval(*c, labels)) return false;
      }
      return true;
    case Op::kOr:
      for (const NodeP& c : n.children) {
        if (Eval(*c, labels)) return true;
      }
      return false;
  }
  return false;
}

// Recursive descent over the raw text; positions in errors are 0-based byte offsets.
class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  absl::StatusOr<NodeP> ParseAll() {
    SkipSpace();
    if (AtEnd()) return Make(Op::kAll);  // the empty selector means all()
    ASSIGN_OR_RETURN(NodeP root, ParseOr());
    SkipSpace();
    if (!AtEnd()) return Unexpected();
    return root;
  }

 private:
  bool AtEnd() const { return pos_ >= s_.size(); }
  void SkipSpace() {
    while (!AtEnd() && IsSpace(s_[pos_])) ++pos_;
  }
  bool Peek(std::string_view token) const { return s_.substr(pos_).starts_with(token); }

  static NodeP Make(Op op) {
    auto n = std::make_shared<Node>();
    n->op = op;
    return n;
  }

  absl::Status Error(const std::string& what, size_t at) const {
    return absl::InvalidArgumentError(what + " at position " + std::to_string(at) + " in selector \"" +
                                      std::string(s_) + "\"");
  }

  // Names the token at pos_ for "unexpected ..." messages.
  absl::Status Unexpected() const {
    if (AtEnd()) return Error("unexpected end of selector", pos_);
    for (std::string_view op : {"&&", "||", "==", "!="}) {
      if (Peek(op)) return Error("unexpected \"" + std::string(op) + "\"", pos_);
    }
    size_t end = pos_;
    while (end < s_.size() && IsLabelChar(s_[end])) ++end;
    if (end == pos_) end = pos_ + 1;
    return Error("unexpected \"" + std::string(s_.substr(pos_, end - pos_)) + "\"", pos_);
  }

  std::string ReadWord() {
    size_t start = pos_;
    while (!AtEnd() && IsLabelChar(s_[pos_])) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  // True (and consumed) if the next word is exactly `word`.
  bool AcceptWord(std::string_view word) {
    SkipSpace();
    size_t save = pos_;
    if (ReadWord() == word) return true;
    pos_ = save;
    return false;
  }

  absl::Status Expect(char c) {
    SkipSpace();
    if (AtEnd() || s_[pos_] != c) return Unexpected();
    ++pos_;
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ParseString() {
    SkipSpace();
    if (AtEnd() || (s_[pos_] != '"' && s_[pos_] != '\'')) {
      if (AtEnd()) return Error("expected a quoted string but found the end of selector", pos_);
      return Unexpected();
    }
    char quote = s_[pos_];
    size_t start = pos_++;
    size_t close = s_.find(quote, pos_);
    if (close == std::string_view::npos) return Error("unterminated string", start);
    std::string value(s_.substr(pos_, close - pos_));
    pos_ = close + 1;
    return value;
  }

  absl::StatusOr<NodeP> ParseOr() {
    std::vector<NodeP> parts;
    ASSIGN_OR_RETURN(NodeP first, ParseAnd());
    parts.push_back(first);
    for (SkipSpace(); Peek("||"); SkipSpace()) {
      pos_ += 2;
      ASSIGN_OR_RETURN(NodeP next, ParseAnd());
      parts.push_back(next);
    }
    if (parts.size() == 1) return parts[0];
    auto n = std::make_shared<Node>();
    n->op = Op::kOr;
    n->children = std::move(parts);
    return NodeP(n);
  }

  absl::StatusOr<NodeP> ParseAnd() {
    std::vector<NodeP> parts;
    ASSIGN_OR_RETURN(NodeP first, ParseUnary());
    parts.push_back(first);
    for (SkipSpace(); Peek("&&"); SkipSpace()) {
      pos_ += 2;
      ASSIGN_OR_RETURN(NodeP next, ParseUnary());
      parts.push_back(next);
    }
    if (parts.size() == 1) return parts[0];
    auto n = std::make_shared<Node>();
    n->op = Op::kAnd;
    n->children = std::move(parts);
    return NodeP(n);
  }

  absl::StatusOr<NodeP> ParseUnary() {
    SkipSpace();
    if (!AtEnd() && s_[pos_] == '!' && !Peek("!=")) {
      ++pos_;
      ASSIGN_OR_RETURN(NodeP child, ParseUnary());
      auto n = std::make_shared<Node>();
      n->op = Op::kNot;
      n->children.push_back(child);
      return NodeP(n);
    }
    return ParsePrimary();
  }

  // After "all"/"global"/"has": true if an opening parenthesis follows.
  bool NextIsParen() {
    size_t save = pos_;
    SkipSpace();
    bool paren = !AtEnd() && s_[pos_] == '(';
    pos_ = save;
    return paren;
  }

  absl::StatusOr<NodeP> ParsePrimary() {
    SkipSpace();
    if (AtEnd()) return Unexpected();
    if (s_[pos_] == '(') {
      ++pos_;
      ASSIGN_OR_RETURN(NodeP inner, ParseOr());
      RETURN_IF_ERROR(Expect(')'));
      return inner;
    }
    if (!IsLabelChar(s_[pos_])) return Unexpected();
    std::string word = ReadWord();
    if ((word == "all" || word == "global") && NextIsParen()) {
      RETURN_IF_ERROR(Expect('('));
      RETURN_IF_ERROR(Expect(')'));
      return Make(word == "all" ? Op::kAll : Op::kGlobal);
    }
    if (word == "has" && NextIsParen()) {
      RETURN_IF_ERROR(Expect('('));
      SkipSpace();
      if (AtEnd() || !IsLabelChar(s_[pos_])) return Unexpected();
      auto n = std::make_shared<Node>();
      n->op = Op::kHas;
      n->label = ReadWord();
      RETURN_IF_ERROR(Expect(')'));
      return NodeP(n);
    }
    auto n = std::make_shared<Node>();
    n->label = word;
    SkipSpace();
    if (Peek("==") || Peek("!=")) {
      n->op = Peek("==") ? Op::kEq : Op::kNe;
      pos_ += 2;
      ASSIGN_OR_RETURN(n->value, ParseString());
      return NodeP(n);
    }
    size_t op_pos = pos_;
    if (AcceptWord("in")) {
      n->op = Op::kIn;
    } else if (AcceptWord("not")) {
      if (!AcceptWord("in")) return Error("expected \"in\" after \"not\"", pos_);
      n->op = Op::kNotIn;
    } else if (AcceptWord("contains")) {
      n->op = Op::kContains;
    } else if (AcceptWord("starts")) {
      if (!AcceptWord("with")) return Error("expected \"with\" after \"starts\"", pos_);
      n->op = Op::kStartsWith;
    } else if (AcceptWord("ends")) {
      if (!AcceptWord("with")) return Error("expected \"with\" after \"ends\"", pos_);
      n->op = Op::kEndsWith;
    } else {
      pos_ = op_pos;
      if (AtEnd()) {
        return Error("expected an operator after label \"" + word + "\" but found the end of selector",
                     pos_);
      }
      return Unexpected();
    }
    if (n->op == Op::kIn || n->op == Op::kNotIn) {
      RETURN_IF_ERROR(Expect('{'));
      SkipSpace();
      if (!AtEnd() && s_[pos_] == '}') {
        ++pos_;
      } else {
        while (true) {
          ASSIGN_OR_RETURN(std::string v, ParseString());
          n->set.push_back(std::move(v));
          SkipSpace();
          if (!AtEnd() && s_[pos_] == ',') {
            ++pos_;
            continue;
          }
          RETURN_IF_ERROR(Expect('}'));
          break;
        }
      }
      std::sort(n->set.begin(), n->set.end());
      n->set.erase(std::unique(n->set.begin(), n->set.end()), n->set.end());
      return NodeP(n);
    }
    ASSIGN_OR_RETURN(n->value, ParseString());
    return NodeP(n);
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<Selector> Selector::Parse(std::string_view text) {
  Parser parser(text);
  ASSIGN_OR_RETURN(NodeP root, parser.ParseAll());
  return Selector(std::move(root));
}

bool Selector::Matches(const Labels& labels) const { return Eval(*root_, labels); }

std::string Selector::String() const { return Print(*root_); }

}  // namespace calico::resources::selector
