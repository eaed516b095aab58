/// The YAML value tree of a configuration, with mmseg-style merging; written back as YAML by Yams.
///
/// Plain YAML scalars are typed by their text (`null`/`~`/empty → null, `true`/`false`,
/// integers, floats such as `1e-4`); quoted scalars are always strings. Mappings keep
/// their key order. `merged(over:)` is the `_base_` rule: mappings merge key by key
/// (recursively), everything else — lists included — is replaced.
import Core
import Foundation
import Yams

/// An ordered mapping from keys to values.
public struct ConfigMap: Equatable, Sendable {
    public private(set) var entries: [(key: String, value: ConfigValue)]

    public init(_ entries: [(key: String, value: ConfigValue)] = []) { self.entries = entries }

    public var keys: [String] { entries.map(\.key) }

    public subscript(key: String) -> ConfigValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }

    public static func == (a: ConfigMap, b: ConfigMap) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

/// A configuration value.
public indirect enum ConfigValue: Equatable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([ConfigValue])
    case map(ConfigMap)

    // MARK: - Parsing

    /// Parses YAML text (`source` names it in errors). An empty document is an empty map.
    public static func parse(yaml text: String, source: String) throws -> ConfigValue {
        try checkBeforeParsing(text, source: source)
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw CausalTuneError("\(source): invalid YAML: \(ConfigValue.describe(error))")
        } catch {
            throw CausalTuneError("\(source): invalid YAML: \(error)")
        }
        guard let node else { return .map(ConfigMap()) }
        return try ConfigValue(node: node, source: source)
    }

    /// The largest config text (1 MiB; real configs are a few kB).
    public static let maxTextBytes = 1 << 20
    /// The deepest nesting we let the YAML parser see: its reader recurses once per level.
    public static let maxNestingEstimate = 200

    /// Cheap checks on the raw text before the YAML library sees it: size, and an upper
    /// estimate of the nesting depth (per line: indentation + block indicators `- `, `? `,
    /// `: ` + open flow brackets), so a file of a million `[` or `- - - …` is one line, not
    /// a stack overflow.
    static func checkBeforeParsing(_ text: String, source: String) throws {
        guard text.utf8.count <= maxTextBytes else {
            throw CausalTuneError("\(source): \(text.utf8.count) bytes is too large for a config file (at most \(maxTextBytes))")
        }
        var brackets = 0
        var lineNumber = 1
        var estimate = 0
        var atLineStart = true
        var previous: UInt8 = 0x0A
        // Anchors (`&a`) and aliases (`*a`) are refused here, before the YAML library
        // expands them: it copies the anchored node for every alias (and hashes the copies),
        // so a few lines of nested aliases cost time and memory exponential in their depth.
        var quote: UInt8 = 0          // ' or " while inside a quoted scalar
        var comment = false
        var lastSignificant: UInt8 = 0x0A
        for b in text.utf8 {
            if b == 0x0A { comment = false; if quote == 0x27 || quote == 0x22 { /* multi-line quoted */ } }
            if !comment {
                if quote != 0 {
                    if b == quote { quote = 0 }
                } else if b == 0x27 || b == 0x22, [0x0A, 0x3A, 0x2D, 0x5B, 0x7B, 0x2C, 0x3F].contains(lastSignificant) {
                    quote = b
                } else if b == 0x23, previous == 0x20 || previous == 0x0A || previous == 0x09 {
                    comment = true
                } else if (b == 0x26 || b == 0x2A), [0x0A, 0x3A, 0x2D, 0x5B, 0x7B, 0x2C, 0x3F].contains(lastSignificant) {
                    throw CausalTuneError("\(source): line \(lineNumber): YAML anchors and aliases (&name, *name) are not supported; write the value out")
                }
            }
            if b != 0x20 && b != 0x09 && !comment { lastSignificant = b }
            if b == 0x0A { lastSignificant = 0x0A }
            // A block indicator is `-`, `?` or `:` followed by a space or the line's end.
            if (b == 0x20 || b == 0x0A) && (previous == 0x2D || previous == 0x3F || previous == 0x3A) { estimate += 1 }
            switch b {
            case 0x0A:
                lineNumber += 1; estimate = 0; atLineStart = true
            case 0x20 where atLineStart:
                estimate += 1
            case 0x5B, 0x7B:
                brackets += 1; atLineStart = false
            case 0x5D, 0x7D:
                brackets = max(0, brackets - 1); atLineStart = false
            default:
                atLineStart = false
            }
            previous = b
            if estimate + brackets > maxNestingEstimate {
                throw CausalTuneError("\(source): line \(lineNumber) nests too deeply for a config file")
            }
        }
    }

    /// Parses a `--set` value: a YAML scalar or flow collection (`0.5`, `[1, 2]`, `{a: 1}`).
    public static func parse(overrideValue text: String, source: String) throws -> ConfigValue {
        if text.trimmingCharacters(in: .whitespaces).isEmpty { return .null }
        return try parse(yaml: text, source: source)
    }

    init(node: Node, source: String) throws {
        // The YAML library expands an alias into a copy of its anchored node, so a few lines
        // of nested aliases become billions of nodes; anchors are refused where they appear.
        if let anchor = node.anchor {
            throw CausalTuneError("\(source): YAML anchors and aliases are not supported (anchor '&\(anchor.rawValue)'\(ConfigValue.line(node)))")
        }
        switch node {
        case .scalar(let scalar):
            self = scalar.style == .plain ? ConfigValue.plain(scalar.string) : .string(scalar.string)
        case .sequence(let sequence):
            self = .list(try sequence.map { try ConfigValue(node: $0, source: source) })
        case .mapping(let mapping):
            var map = ConfigMap()
            for (key, value) in mapping {
                guard case .scalar(let k) = key else {
                    throw CausalTuneError("\(source): a mapping key must be a plain name\(ConfigValue.line(key))")
                }
                if map[k.string] != nil {
                    throw CausalTuneError("\(source): duplicate key '\(k.string)'\(ConfigValue.line(key))")
                }
                map[k.string] = try ConfigValue(node: value, source: source)
            }
            self = .map(map)
        case .alias:
            throw CausalTuneError("\(source): YAML aliases are not supported\(ConfigValue.line(node))")
        }
    }

    static func line(_ node: Node) -> String {
        node.mark.map { " (line \($0.line))" } ?? ""
    }

    static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
             .composer(_, let problem, let mark, _):
            return "\(problem) at line \(mark.line), column \(mark.column)"
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "unreadable"
        }
    }

    /// The value of a plain (unquoted) scalar.
    static func plain(_ text: String) -> ConfigValue {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if let i = Int(text) { return .int(i) }
        if let d = parseFloat(text) { return .float(d) }
        return .string(text)
    }

    /// YAML floats: decimal/exponent forms (`0.5`, `1e-4`, `-2.`) and `.inf`, `-.inf`, `.nan`.
    static func parseFloat(_ text: String) -> Double? {
        switch text.lowercased() {
        case ".inf", "+.inf": return .infinity
        case "-.inf": return -.infinity
        case ".nan": return .nan
        default: break
        }
        guard let first = text.first, first.isNumber || first == "-" || first == "+" || first == "." else { return nil }
        guard text.allSatisfy({ $0.isNumber || "+-.eE".contains($0) }) else { return nil }
        return Double(text)
    }

    // MARK: - Access

    /// The value at a dotted path (`model.peft.tokens`, `data.val.0.root`, `data.val[0].root`).
    public func value(at path: String) -> ConfigValue? {
        var current: ConfigValue? = self
        for component in ConfigValue.components(path) {
            switch current {
            case .map(let map)?: current = map[component]
            case .list(let list)?:
                guard let i = Int(component), i >= 0, i < list.count else { return nil }
                current = list[i]
            default: return nil
            }
        }
        return current
    }

    /// `a.b[2].c` → `["a", "b", "2", "c"]`.
    static func components(_ path: String) -> [String] {
        path.replacingOccurrences(of: "[", with: ".").replacingOccurrences(of: "]", with: "")
            .split(separator: ".", omittingEmptySubsequences: true).map(String.init)
    }

    /// `self` with `value` stored at `components` (missing maps are created); throws when
    /// the path runs through a scalar or past the end of a list.
    public func setting(_ value: ConfigValue, at components: ArraySlice<String>, fullPath: String) throws -> ConfigValue {
        guard let head = components.first else { return value }
        let rest = components.dropFirst()
        switch self {
        case .map(var map):
            let child = map[head] ?? .map(ConfigMap())
            map[head] = try child.setting(value, at: rest, fullPath: fullPath)
            return .map(map)
        case .list(var list):
            guard let i = Int(head), i >= 0, i < list.count else {
                throw CausalTuneError("config key '\(fullPath)': index \(head) is outside the list (\(list.count) items)")
            }
            list[i] = try list[i].setting(value, at: rest, fullPath: fullPath)
            return .list(list)
        case .null:
            return try ConfigValue.map(ConfigMap()).setting(value, at: components, fullPath: fullPath)
        default:
            throw CausalTuneError("config key '\(fullPath)': '\(head)' is inside a value that is not a mapping")
        }
    }

    // MARK: - Merging

    /// `self` (the including file) merged over `base`: mappings merge recursively, other
    /// values (lists included) replace the base's.
    public func merged(over base: ConfigValue) -> ConfigValue {
        guard case .map(let top) = self, case .map(var merged) = base else { return self }
        for (key, value) in top.entries {
            if let old = merged[key] {
                merged[key] = value.merged(over: old)
            } else {
                merged[key] = value
            }
        }
        return .map(merged)
    }

    // MARK: - Writing YAML

    /// Block-style YAML for this value (a mapping at the top), written by Yams; lists of
    /// scalars in flow style (`[0.9, 0.999]`), keys in the map's order. Parsing the text
    /// gives back an equal value.
    public var yaml: String {
        do {
            return try Yams.serialize(node: node, width: -1, allowUnicode: true)
        } catch {
            // libyaml's emitter fails only on an ill-formed event stream, which a node tree
            // cannot produce.
            preconditionFailure("YAML emitter: \(error)")
        }
    }

    /// This value as a YAML node. Scalars carry their text as we type it on reading (floats
    /// always with a dot); a string is plain only when it reads back as itself.
    var node: Node {
        switch self {
        case .null, .bool, .int, .float: return .scalar(.init(flow, .implicit, .plain))
        case .string(let s): return .scalar(.init(s, .implicit, ConfigValue.readsBackPlain(s) ? .plain : .doubleQuoted))
        case .list(let items): return .sequence(.init(items.map(\.node), .implicit, isScalarOrFlatList ? .flow : .block))
        case .map(let map):
            return .mapping(.init(map.entries.map { (ConfigValue.string($0.key).node, $0.value.node) }, .implicit,
                                  map.entries.isEmpty ? .flow : .block))
        }
    }

    public var description: String { flow }

    /// This value on one line (scalars and flow collections), for messages.
    public var flow: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .float(let d): return ConfigValue.formatFloat(d)
        case .string(let s): return ConfigValue.quoteIfNeeded(s)
        case .list(let items): return "[" + items.map(\.flow).joined(separator: ", ") + "]"
        case .map(let map):
            return "{" + map.entries.map { "\(ConfigValue.quoteIfNeeded($0.key)): \($0.value.flow)" }.joined(separator: ", ") + "}"
        }
    }

    private var isScalarOrFlatList: Bool {
        switch self {
        case .map(let m): return m.entries.isEmpty
        case .list(let items): return items.allSatisfy { if case .map = $0 { return false }; if case .list = $0 { return false }; return true }
        default: return true
        }
    }

    /// Floats always carry a dot so every YAML reader (PyYAML included) types them as
    /// floats: `1.0e-08`, `0.0001`, `40000.0`.
    static func formatFloat(_ d: Double) -> String {
        if d.isNaN { return ".nan" }
        if d.isInfinite { return d > 0 ? ".inf" : "-.inf" }
        var s = "\(d)"
        if !s.contains(".") {
            if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
                s.insert(contentsOf: ".0", at: e)
            } else {
                s += ".0"
            }
        }
        return s
    }

    /// `s` plain when it reads back as the same string, else a double-quoted string (JSON's
    /// escapes are YAML's too).
    static func quoteIfNeeded(_ s: String) -> String {
        readsBackPlain(s) ? s : JSONValue.quote(s)
    }

    /// Whether `s` written plain reads back as the string `s` (not a number, bool or null,
    /// and no character YAML could take as syntax).
    static func readsBackPlain(_ s: String) -> Bool {
        let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./+-")
        return !s.isEmpty && s.unicodeScalars.allSatisfy { safe.contains($0) } && !"-+.".contains(s.first!)
            && plain(s) == .string(s)
    }
}
