#include "common/resources/selector/selector.h"

#include <catch2/catch.hpp>

#include "common/base/status_macros.h"

namespace calico::resources::selector {
namespace {

struct MatchCase {
  std::string selector;
  Labels labels;
  bool matches;
};

TEST_CASE("Selector matches as upstream does", "[unit][selector]") {
  const Labels kNone;
  const Labels kApp = {{"app", "web"}, {"tier", "frontend"}, {"empty", ""}};
  const std::vector<MatchCase> cases = {
      {"", kNone, true},  // empty selector == all()
      {"   ", kApp, true},
      {"all()", kNone, true},
      {"all( )", kApp, true},
      {"global()", kApp, true},
      {"app == 'web'", kApp, true},
      {"app == \"web\"", kApp, true},
      {"app == 'db'", kApp, false},
      {"missing == ''", kApp, false},  // == on a missing label is false, even against ""
      {"empty == ''", kApp, true},
      {"has(empty)", kApp, true},      // has() is presence, not non-emptiness
      {"has(missing)", kApp, false},
      {"!has(missing)", kApp, true},
      {"missing != 'x'", kApp, true},  // != on a missing label is true
      {"app != 'web'", kApp, false},
      {"missing in {'a'}", kApp, false},
      {"missing not in {'a'}", kApp, true},  // not in on a missing label is true
      {"app in {'db', 'web'}", kApp, true},
      {"app in {}", kApp, false},
      {"app not in {}", kApp, true},
      {"app not in {'web'}", kApp, false},
      {"app contains 'e'", kApp, true},
      {"app starts with 'we'", kApp, true},
      {"app ends with 'eb'", kApp, true},
      {"app ends with 'we'", kApp, false},
      {"missing contains ''", kApp, false},
      // && binds tighter than ||: a || (b && c).
      {"app == 'web' || tier == 'x' && missing == 'z'", kApp, true},
      {"(app == 'web' || tier == 'x') && missing == 'z'", kApp, false},
      {"!!has(app)", kApp, true},
      {"!(has(app) && has(missing))", kApp, true},
      {"  app=='web'&&tier=='frontend'  ", kApp, true},
      {"k8s.io/role-x_1 == 'a'", {{"k8s.io/role-x_1", "a"}}, true},
      {"all() && !has(app)", kApp, false},
      {"has ( app )", kApp, true},
      {"all == 'x'", {{"all", "x"}}, true},  // "all" without () is a label
  };
  for (const MatchCase& c : cases) {
    INFO("selector: " << c.selector);
    absl::StatusOr<Selector> s = Selector::Parse(c.selector);
    REQUIRE(s.ok());
    CHECK(s->Matches(c.labels) == c.matches);
    // The canonical text re-parses to a selector with the same text and behaviour.
    absl::StatusOr<Selector> again = Selector::Parse(s->String());
    REQUIRE(again.ok());
    CHECK(again->String() == s->String());
    CHECK(again->Matches(c.labels) == c.matches);
  }
}

TEST_CASE("Selector prints canonically", "[unit][selector]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "all()"},
      {"app=='web'", "app == \"web\""},
      {"a == 'x' && has(b)", "(a == \"x\" && has(b))"},
      {"a == 'x' || b == 'y' && c == 'z'", "(a == \"x\" || (b == \"y\" && c == \"z\"))"},
      {"a in { 'z','y' , 'z'}", "a in {\"y\", \"z\"}"},
      {"a not in {}", "a not in {}"},
      {"a == 'say \"hi\"'", "a == 'say \"hi\"'"},
      {"! has(x)", "!has(x)"},
      {"a starts with \"p\"", "a starts with \"p\""},
      {"global()", "global()"},
  };
  for (const auto& [in, want] : cases) {
    INFO("selector: " << in);
    absl::StatusOr<Selector> s = Selector::Parse(in);
    REQUIRE(s.ok());
    CHECK(s->String() == want);
  }
}

TEST_CASE("Selector rejects malformed input with a position", "[unit][selector]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a == 'x' && && b", "unexpected \"&&\" at position 12 in selector \"a == 'x' && && b\""},
      {"a == 'x", "unterminated string at position 5 in selector \"a == 'x\""},
      {"a ==", "expected a quoted string but found the end of selector at position 4 in selector \"a ==\""},
      {"a", "expected an operator after label \"a\" but found the end of selector at position 1 in selector \"a\""},
      {"a = 'x'", "unexpected \"=\" at position 2 in selector \"a = 'x'\""},
      {"(a == 'x'", "unexpected end of selector at position 9 in selector \"(a == 'x'\""},
      {"a == 'x')", "unexpected \")\" at position 8 in selector \"a == 'x')\""},
      {"has(a", "unexpected end of selector at position 5 in selector \"has(a\""},
      {"a in {'x' 'y'}", "unexpected \"'\" at position 10 in selector \"a in {'x' 'y'}\""},
      {"a not 'x'", "expected \"in\" after \"not\" at position 6 in selector \"a not 'x'\""},
      {"a == x", "unexpected \"x\" at position 5 in selector \"a == x\""},
      {"@", "unexpected \"@\" at position 0 in selector \"@\""},
      {"a == 'x' b == 'y'", "unexpected \"b\" at position 9 in selector \"a == 'x' b == 'y'\""},
      {"!", "unexpected end of selector at position 1 in selector \"!\""},
      {"a == 'x' ||", "unexpected end of selector at position 11 in selector \"a == 'x' ||\""},
  };
  for (const auto& [in, want] : cases) {
    INFO("selector: " << in);
    absl::StatusOr<Selector> s = Selector::Parse(in);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(ToStd(s.status().message()) == want);
  }
}

}  // namespace
}  // namespace calico::resources::selector
