// YAML and JSON at the edge: yaml-cpp and nlohmann exceptions stop here. Output is written by
// hand so that it is byte-stable and looks like calicoctl/kubectl's (block style, 2-space
// indent, list items at their key's indentation, strings quoted only when needed).
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "common/base/status_macros.h"
#include "common/resources/internal/schema.h"
#include "common/resources/resource.h"

namespace calico::resources {
namespace {

// ---- Scalar typing, shared by the reader and the quoting decision of the writer -------------

bool IsNullWord(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

// YAML 1.1 booleans, as go-yaml v2 (and so kubectl/calicoctl) reads them.
std::optional<bool> BoolWord(std::string_view s) {
  for (std::string_view t : {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"}) {
    if (s == t) return true;
  }
  for (std::string_view f : {"n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"}) {
    if (s == f) return false;
  }
  return std::nullopt;
}

std::optional<Json> IntWord(std::string_view s) {
  std::string_view digits = s;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  if (digits.empty()) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  if (negative) {
    if (value > uint64_t(std::numeric_limits<int64_t>::max()) + 1) return std::nullopt;
    return Json(static_cast<int64_t>(0 - value));
  }
  if (value <= uint64_t(std::numeric_limits<int64_t>::max())) return Json(static_cast<int64_t>(value));
  return Json(value);
}

std::optional<Json> FloatWord(std::string_view s) {
  for (std::string_view inf : {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"}) {
    if (s == inf) return Json(HUGE_VAL);
  }
  for (std::string_view inf : {"-.inf", "-.Inf", "-.INF"}) {
    if (s == inf) return Json(-HUGE_VAL);
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return Json(std::nan(""));
  // [-+]? ( .digits | digits(.digits*)? ) ([eE][-+]?digits)?, with a '.' or an exponent.
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t mantissa = 0;
  bool dot = false, exp = false;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || (s[i] == '.' && !dot))) {
    if (s[i] == '.') dot = true; else ++mantissa;
    ++i;
  }
  if (mantissa == 0) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    exp = true;
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
    if (digits == 0) return std::nullopt;
  }
  if (i != s.size() || (!dot && !exp)) return std::nullopt;
  return Json(std::strtod(std::string(s).c_str(), nullptr));
}

// A plain (unquoted) scalar's value.
Json ResolvePlain(const std::string& s) {
  if (IsNullWord(s)) return Json(nullptr);
  if (std::optional<bool> b = BoolWord(s)) return Json(*b);
  if (std::optional<Json> i = IntWord(s)) return *i;
  if (std::optional<Json> f = FloatWord(s)) return *f;
  return Json(s);
}

// ---- YAML in -------------------------------------------------------------------------------

struct SyntaxError {
  int line;  // 1-based, in the whole input
  std::string message;
};

absl::StatusOr<Json> FromYaml(const YAML::Node& node, int line_offset) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return Json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      const std::string& s = node.Scalar();
      // "!" marks a quoted or block scalar: always a string, like "80" or "true".
      if (tag == "!" || tag == "tag:yaml.org,2002:str") return Json(s);
      if (tag == "tag:yaml.org,2002:int") {
        if (std::optional<Json> i = IntWord(s)) return *i;
      }
      if (tag == "tag:yaml.org,2002:float") {
        if (std::optional<Json> f = FloatWord(s)) return *f;
        if (std::optional<Json> i = IntWord(s)) return Json(static_cast<double>(i->get<int64_t>()));
      }
      if (tag == "tag:yaml.org,2002:bool") {
        if (std::optional<bool> b = BoolWord(s)) return Json(*b);
      }
      return ResolvePlain(s);
    }
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const YAML::Node& item : node) {
        ASSIGN_OR_RETURN(Json v, FromYaml(item, line_offset));
        out.push_back(std::move(v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& kv : node) {
        int line = line_offset + kv.first.Mark().line + 1;
        if (!kv.first.IsScalar()) {
          return absl::InvalidArgumentError("line " + std::to_string(line) + ": mapping keys must be scalars");
        }
        const std::string& key = kv.first.Scalar();
        if (out.contains(key)) {
          return absl::InvalidArgumentError("line " + std::to_string(line) + ": duplicate key \"" + key + "\"");
        }
        ASSIGN_OR_RETURN(Json v, FromYaml(kv.second, line_offset));
        out[key] = std::move(v);
      }
      return out;
    }
  }
  return Json(nullptr);
}

struct Chunk {
  std::string text;
  int first_line = 0;  // 0-based line of the chunk's first line in the input
};

// Splits at "---" lines ourselves so that each document's errors can name it and its line.
std::vector<Chunk> SplitDocuments(std::string_view text) {
  std::vector<Chunk> chunks(1);
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    bool separator = line.starts_with("---") && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    if (separator) chunks.push_back(Chunk{"", line_no});
    chunks.back().text.append(line);
    chunks.back().text.push_back('\n');
    ++line_no;
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return chunks;
}

// kind: List (or FooList) expands to its items; items of a typed list may omit kind/apiVersion.
void Expand(const Json& doc, std::vector<Json>& out) {
  if (doc.is_object() && doc.contains("items") && doc["items"].is_array() && doc.contains("kind") &&
      doc["kind"].is_string() && doc["kind"].get<std::string>().ends_with("List")) {
    std::string list_kind = doc["kind"].get<std::string>();
    std::string item_kind = list_kind == "List" ? "" : list_kind.substr(0, list_kind.size() - 4);
    for (Json item : doc["items"]) {
      if (item.is_object() && !item_kind.empty()) {
        if (!item.contains("kind")) item["kind"] = item_kind;
        if (!item.contains("apiVersion") && doc.contains("apiVersion")) item["apiVersion"] = doc["apiVersion"];
      }
      out.push_back(std::move(item));
    }
    return;
  }
  out.push_back(doc);
}

absl::StatusOr<std::vector<Json>> DecodeYaml(std::string_view text) {
  std::vector<Json> docs;
  std::vector<Chunk> chunks = SplitDocuments(text);
  int doc_number = 0;
  for (const Chunk& chunk : chunks) {
    YAML::Node node;
    try {
      node = YAML::Load(chunk.text);
    } catch (const YAML::Exception& e) {
      std::string where = "document " + std::to_string(doc_number + 1);
      if (!e.mark.is_null()) {
        where += ", line " + std::to_string(chunk.first_line + e.mark.line + 1) + ", column " +
                 std::to_string(e.mark.column + 1);
      }
      return absl::InvalidArgumentError("YAML syntax error in " + where + ": " + e.msg);
    }
    if (!node.IsDefined() || node.IsNull()) continue;  // empty document, comments only
    ++doc_number;
    absl::StatusOr<Json> json = FromYaml(node, chunk.first_line);
    if (!json.ok()) {
      return absl::InvalidArgumentError("YAML error in document " + std::to_string(doc_number) + ": " +
                                        ToStd(json.status().message()));
    }
    docs.push_back(std::move(*json));
  }
  return docs;
}

absl::StatusOr<std::vector<Json>> DecodeJson(std::string_view text) {
  try {
    Json doc = Json::parse(text.begin(), text.end());
    if (doc.is_array()) return std::vector<Json>(doc.begin(), doc.end());
    return std::vector<Json>{std::move(doc)};
  } catch (const nlohmann::json::parse_error& e) {
    // byte is 1-based; count lines up to it.
    size_t upto = std::min<size_t>(e.byte, text.size());
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + upto, '\n'));
    return absl::InvalidArgumentError("JSON syntax error at line " + std::to_string(line) + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(std::string("JSON error: ") + e.what());
  }
}

// ---- YAML out ------------------------------------------------------------------------------

bool IsTimestampLike(std::string_view s) {
  // go-yaml quotes what YAML 1.1 would read as a timestamp (kubectl's creationTimestamp: "...").
  return s.size() >= 10 && std::isdigit(static_cast<unsigned char>(s[0])) && std::isdigit(static_cast<unsigned char>(s[1])) &&
         std::isdigit(static_cast<unsigned char>(s[2])) && std::isdigit(static_cast<unsigned char>(s[3])) && s[4] == '-';
}

// go-yaml also quotes YAML 1.1 base-60 numbers ("1:20"), which older parsers read as integers.
bool IsBase60Like(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  size_t start = i;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || (s[i] == '_' && i > start))) ++i;
  if (i == start || i == s.size() || s[i] != ':') return false;
  while (i < s.size() && s[i] == ':') {
    ++i;
    size_t digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && digits < 2) ++i, ++digits;
    if (digits == 0 || (digits == 2 && s[i - 2] > '5')) return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
  }
  return i == s.size();
}

bool LooksTyped(const std::string& s) {
  return !ResolvePlain(s).is_string() || IsTimestampLike(s) || IsBase60Like(s);
}

bool PlainIsSafe(const std::string& s) {
  if (s.empty()) return false;
  if (LooksTyped(s)) return false;
  if (std::string_view("-?:,[]{}#&*!|>'\"%@`").find(s.front()) != std::string_view::npos) return false;
  if (s.front() == ' ' || s.back() == ' ' || s.back() == ':') return false;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return false;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

std::string DoubleQuoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[5];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string YamlString(const std::string& s) {
  if (PlainIsSafe(s)) return s;
  bool control = std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  // Like go-yaml: values that would read back as another type get double quotes; other
  // strings that cannot be plain get single quotes.
  if (control || s.empty() || LooksTyped(s)) return DoubleQuoted(s);
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string YamlScalar(const Json& v) {
  if (v.is_string()) return YamlString(v.get_ref<const std::string&>());
  if (v.is_null()) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isnan(d)) return ".nan";
    if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  }
  if (v.is_object()) return "{}";
  if (v.is_array()) return "[]";
  return v.dump();
}

void EmitSequence(const Json& seq, int indent, std::string& out);

void EmitMapping(const Json& map, int indent, std::string& out, bool first_inline) {
  bool first = true;
  for (const auto& [key, value] : map.items()) {
    if (!(first && first_inline)) out.append(indent, ' ');
    first = false;
    out += YamlString(key) + ":";
    if (value.is_object() && !value.empty()) {
      out += "\n";
      EmitMapping(value, indent + 2, out, false);
    } else if (value.is_array() && !value.empty()) {
      out += "\n";
      EmitSequence(value, indent, out);  // kubectl style: "- " at the key's indentation
    } else {
      out += " " + YamlScalar(value) + "\n";
    }
  }
}

void EmitSequence(const Json& seq, int indent, std::string& out) {
  for (const Json& item : seq) {
    out.append(indent, ' ');
    out += "-";
    if (item.is_object() && !item.empty()) {
      out += " ";
      EmitMapping(item, indent + 2, out, true);
    } else if (item.is_array() && !item.empty()) {
      out += "\n";
      EmitSequence(item, indent + 2, out);
    } else {
      out += " " + YamlScalar(item) + "\n";
    }
  }
}

Json Wrap(const std::vector<Resource>& resources, bool force_list) {
  if (resources.size() == 1 && !force_list) return resources[0].object;
  Json items = Json::array();
  for (const Resource& r : resources) items.push_back(r.object);
  Json list = Json::object();
  list["apiVersion"] = "projectcalico.org/v3";
  list["kind"] = "List";
  list["items"] = std::move(items);
  return list;
}

}  // namespace

absl::StatusOr<std::vector<ParsedDocument>> ParseDocuments(std::string_view text,
                                                           std::string_view default_namespace) {
  size_t first = text.find_first_not_of(" \t\r\n");
  std::vector<Json> decoded;
  if (first != std::string_view::npos) {
    bool json = text[first] == '{' || text[first] == '[';
    ASSIGN_OR_RETURN(decoded, json ? DecodeJson(text) : DecodeYaml(text));
  }
  std::vector<Json> objects;
  for (const Json& doc : decoded) Expand(doc, objects);
  std::vector<ParsedDocument> out;
  for (size_t i = 0; i < objects.size(); ++i) {
    ParsedDocument d;
    d.index = static_cast<int>(i + 1);
    d.object = objects[i];
    d.resource = FromObject(objects[i], default_namespace);
    out.push_back(std::move(d));
  }
  return out;
}

std::string ToYaml(const std::vector<Resource>& resources, bool force_list) {
  std::string out;
  EmitMapping(Wrap(resources, force_list), 0, out, false);
  return out;
}

std::string ToJson(const std::vector<Resource>& resources, bool force_list) {
  return Wrap(resources, force_list).dump(2, ' ', false, nlohmann::detail::error_handler_t::replace) + "\n";
}

}  // namespace calico::resources
