#pragma once
// Calico's selector language, all of it:
//   all()  global()  has(k)  !has(k)  k == "v"  k != "v"  k in {"a","b"}  k not in {...}
//   k contains "s"  k starts with "s"  k ends with "s"  !expr  expr && expr  expr || expr  ( )
// Precedence: ! binds tightest, then &&, then ||. An empty selector means all().
// Semantics as upstream: a != or `not in` on a missing label is true; ==, in, contains,
// starts with, ends with on a missing label are false.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/resources/resource.h"

namespace calico::resources::selector {

class Node;  // AST, private to selector.cc

class Selector {
 public:
  // InvalidArgument with the 0-based byte position, e.g. for "a == 'x' && && b" position 12.
  static absl::StatusOr<Selector> Parse(std::string_view text);

  bool Matches(const Labels& labels) const;
  // Canonical text (stable, re-parses to the same selector), e.g. `(a == "x" && has(b))`.
  std::string String() const;

  Selector(const Selector&) = default;
  Selector& operator=(const Selector&) = default;

 private:
  explicit Selector(std::shared_ptr<const Node> root) : root_(std::move(root)) {}
  std::shared_ptr<const Node> root_;
};

}  // namespace calico::resources::selector
