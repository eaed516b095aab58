import Foundation

/// A minimal pickle virtual machine — enough for what `torch.save` writes (protocol 2,
/// also the protocol-4 framing opcodes) without executing anything.
///
/// Calls (`REDUCE`, `NEWOBJ`) never run code: `torch._utils._rebuild_tensor_v2` and
/// `_rebuild_tensor` become `.tensor` values, `_rebuild_parameter` returns its tensor,
/// `collections.OrderedDict()` an empty dict, and any other call an opaque `.object`
/// (optimizer states, argparse namespaces… are read past, not understood). Persistent ids
/// (`BINPERSID`) of the form `('storage', StorageType, key, location, numel)` become
/// `.storage` values that refer to `data/<key>` in the archive.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    case global(module: String, name: String)
    case storage(PickleStorage)
    case tensor(PickleTensor)
    case object(callable: String)

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var int: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
    var intTuple: [Int]? {
        switch self {
        case .tuple(let items): return items.compactMap(\.int).count == items.count ? items.compactMap(\.int) : nil
        case .list(let l): return l.items.compactMap(\.int).count == l.items.count ? l.items.compactMap(\.int) : nil
        default: return nil
        }
    }
}

final class PickleList { var items: [PickleValue] = [] }

/// An insertion-ordered dict (pickled dicts keep their order).
final class PickleDict {
    var keys: [PickleValue] = []
    var values: [PickleValue] = []
    func set(_ key: PickleValue, _ value: PickleValue) {
        if let s = key.string, let i = keys.firstIndex(where: { $0.string == s }) {
            values[i] = value
        } else {
            keys.append(key)
            values.append(value)
        }
    }
    subscript(_ key: String) -> PickleValue? {
        keys.firstIndex(where: { $0.string == key }).map { values[$0] }
    }
}

struct PickleStorage {
    let type: StoredType
    let key: String
    let count: Int
}

struct PickleTensor {
    let storage: PickleStorage
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

struct PickleError: Error { let message: String }

struct Unpickler {
    private let bytes: [UInt8]
    private var position = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func load() throws -> PickleValue {
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try fixed(8)                                 // FRAME
            case 0x2E: return try pop()                                 // STOP '.'
            case 0x28: marks.append(stack.count)                        // MARK '('
            case 0x7D: stack.append(.dict(PickleDict()))                // EMPTY_DICT '}'
            case 0x5D: stack.append(.list(PickleList()))                // EMPTY_LIST ']'
            case 0x29: stack.append(.tuple([]))                         // EMPTY_TUPLE ')'
            case 0x8F: stack.append(.list(PickleList()))                // EMPTY_SET (read as a list)
            case 0x4E: stack.append(.none)                              // NONE 'N'
            case 0x88: stack.append(.bool(true))                        // NEWTRUE
            case 0x89: stack.append(.bool(false))                       // NEWFALSE
            case 0x4B: stack.append(.int(Int(try byte())))              // BININT1 'K'
            case 0x4D: stack.append(.int(Int(try uint(2))))             // BININT2 'M'
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4))))) // BININT 'J'
            case 0x8A:                                                  // LONG1
                let n = Int(try byte())
                let raw = try fixed(n)
                var v: Int64 = 0
                for (i, b) in raw.prefix(8).enumerated() { v |= Int64(b) << (8 * Int64(i)) }
                if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 { v -= Int64(1) << (8 * Int64(n)) }
                stack.append(.int(Int(v)))
            case 0x47:                                                  // BINFLOAT 'G' (big-endian)
                let raw = try fixed(8)
                var bits: UInt64 = 0
                for b in raw { bits = bits << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: bits)))
            case 0x58: stack.append(.string(try text(Int(try uint(4)))))   // BINUNICODE 'X'
            case 0x8C: stack.append(.string(try text(Int(try byte()))))    // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try text(Int(try uint(8)))))   // BINUNICODE8
            case 0x54: stack.append(.string(try text(Int(try uint(4)))))   // BINSTRING 'T'
            case 0x55: stack.append(.string(try text(Int(try byte()))))    // SHORT_BINSTRING 'U'
            case 0x42: stack.append(.bytes(try fixed(Int(try uint(4)))))   // BINBYTES 'B'
            case 0x43: stack.append(.bytes(try fixed(Int(try byte()))))    // SHORT_BINBYTES 'C'
            case 0x8E: stack.append(.bytes(try fixed(Int(try uint(8)))))   // BINBYTES8
            case 0x71: memo[Int(try byte())] = try top()                // BINPUT 'q'
            case 0x72: memo[Int(try uint(4))] = try top()               // LONG_BINPUT 'r'
            case 0x94: memo[memo.count] = try top()                     // MEMOIZE
            case 0x68: stack.append(try recall(Int(try byte())))        // BINGET 'h'
            case 0x6A: stack.append(try recall(Int(try uint(4))))       // LONG_BINGET 'j'
            case 0x63:                                                  // GLOBAL 'c'
                let module = try line()
                let name = try line()
                stack.append(.global(module: module, name: name))
            case 0x93:                                                  // STACK_GLOBAL
                let name = try pop().string ?? ""
                let module = try pop().string ?? ""
                stack.append(.global(module: module, name: name))
            case 0x74: stack.append(.tuple(try popMark()))              // TUPLE 't'
            case 0x85: stack.append(.tuple([try pop()]))                // TUPLE1
            case 0x86:                                                  // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(.tuple([a, b]))
            case 0x87:                                                  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(.tuple([a, b, c]))
            case 0x6C:                                                  // LIST 'l'
                let l = PickleList()
                l.items = try popMark()
                stack.append(.list(l))
            case 0x64:                                                  // DICT 'd'
                let items = try popMark()
                let d = PickleDict()
                for i in stride(from: 0, to: items.count - 1, by: 2) { d.set(items[i], items[i + 1]) }
                stack.append(.dict(d))
            case 0x61:                                                  // APPEND 'a'
                let v = try pop()
                if case .list(let l) = try top() { l.items.append(v) }
            case 0x65:                                                  // APPENDS 'e'
                let items = try popMark()
                if case .list(let l) = try top() { l.items.append(contentsOf: items) }
            case 0x90:                                                  // ADDITEMS
                let items = try popMark()
                if case .list(let l) = try top() { l.items.append(contentsOf: items) }
            case 0x91: stack.append(.list({ let l = PickleList(); l.items = $0; return l }(try popMark()))) // FROZENSET
            case 0x73:                                                  // SETITEM 's'
                let v = try pop(), k = try pop()
                if case .dict(let d) = try top() { d.set(k, v) }
            case 0x75:                                                  // SETITEMS 'u'
                let items = try popMark()
                if case .dict(let d) = try top() {
                    for i in stride(from: 0, to: items.count - 1, by: 2) { d.set(items[i], items[i + 1]) }
                }
            case 0x30: _ = try pop()                                    // POP '0'
            case 0x31: _ = try popMark()                                // POP_MARK '1'
            case 0x32: stack.append(try top())                          // DUP '2'
            case 0x51:                                                  // BINPERSID 'Q'
                stack.append(try persistentLoad(try pop()))
            case 0x52:                                                  // REDUCE 'R'
                let args = try pop(), callable = try pop()
                stack.append(try call(callable, args))
            case 0x81:                                                  // NEWOBJ
                let args = try pop(), cls = try pop()
                stack.append(try call(cls, args))
            case 0x92:                                                  // NEWOBJ_EX
                _ = try pop()
                let args = try pop(), cls = try pop()
                stack.append(try call(cls, args))
            case 0x62:                                                  // BUILD 'b'
                _ = try pop()                                           // state: ignored
            default:
                throw PickleError(message: String(format: "unsupported pickle opcode 0x%02X at byte %d", op, position - 1))
            }
        }
    }

    // MARK: calls without code

    private func call(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let module, let name) = callable else { return .object(callable: "?") }
        let argv: [PickleValue]
        if case .tuple(let a) = args { argv = a } else { argv = [] }
        switch (module, name) {
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            guard argv.count >= 4, case .storage(let storage) = argv[0], let offset = argv[1].int,
                  let shape = argv[2].intTuple, let strides = argv[3].intTuple, shape.count == strides.count
            else { throw PickleError(message: "malformed _rebuild_tensor arguments") }
            return .tensor(PickleTensor(storage: storage, offset: offset, shape: shape, strides: strides))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            return argv.first ?? .none
        case ("collections", "OrderedDict"), ("builtins", "dict"), ("__builtin__", "dict"):
            return .dict(PickleDict())
        default:
            return .object(callable: "\(module).\(name)")
        }
    }

    private func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let items) = pid, items.count >= 5, items[0].string == "storage" else {
            throw PickleError(message: "unsupported persistent id")
        }
        guard let key = items[2].string ?? items[2].int.map(String.init), let count = items[4].int else {
            throw PickleError(message: "malformed storage reference")
        }
        var typeName = ""
        if case .global(_, let name) = items[1] { typeName = name }
        guard let type = Unpickler.storageType(typeName) else {
            throw PickleError(message: "unsupported storage type \(typeName)")
        }
        return .storage(PickleStorage(type: type, key: key, count: count))
    }

    static func storageType(_ name: String) -> StoredType? {
        switch name {
        case "FloatStorage", "float32", "float": return .float32
        case "HalfStorage", "float16", "half": return .float16
        case "BFloat16Storage", "bfloat16": return .bfloat16
        case "DoubleStorage", "float64", "double": return .float64
        case "LongStorage", "int64", "long": return .int64
        case "IntStorage", "int32", "int": return .int32
        case "ShortStorage", "int16": return .int16
        case "CharStorage", "int8": return .int8
        case "ByteStorage", "uint8": return .uint8
        case "BoolStorage", "bool": return .bool
        default: return nil
        }
    }

    // MARK: byte reading

    private mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw PickleError(message: "pickle ends early") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func fixed(_ n: Int) throws -> [UInt8] {
        guard n >= 0, position + n <= bytes.count else { throw PickleError(message: "pickle ends early") }
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    private mutating func uint(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try fixed(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    private mutating func text(_ n: Int) throws -> String {
        String(decoding: try fixed(n), as: UTF8.self)
    }

    private mutating func line() throws -> String {
        var out: [UInt8] = []
        while true {
            let b = try byte()
            if b == 0x0A { break }
            out.append(b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw PickleError(message: "pickle stack underflow") }
        return v
    }

    private func top() throws -> PickleValue {
        guard let v = stack.last else { throw PickleError(message: "pickle stack underflow") }
        return v
    }

    private mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw PickleError(message: "pickle mark missing") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func recall(_ index: Int) throws -> PickleValue {
        guard let v = memo[index] else { throw PickleError(message: "pickle memo \(index) missing") }
        return v
    }
}
