import Foundation

/// A minimal pickle virtual machine — enough for what `torch.save` writes (protocol 2,
/// also the protocol-4 framing opcodes) without executing anything.
///
/// Calls (`REDUCE`, `NEWOBJ`) never run code: `torch._utils._rebuild_tensor_v2` and
/// `_rebuild_tensor` become `.tensor` values, `_rebuild_parameter` returns its tensor,
/// `collections.OrderedDict()` an empty dict, a TorchScript module (`__torch__.*`) the dict
/// of its attributes (set by `BUILD`), and any other call an opaque `.object`
/// (optimizer states, argparse namespaces… are read past, not understood). Persistent ids
/// (`BINPERSID`) of the form `('storage', StorageType, key, location, numel)` become
/// `.storage` values that refer to `data/<key>` in the archive.
///
/// Safety rules, checked while reading (a crafted pickle gets a `PickleError`, never a
/// trap, an out-of-bounds read or unbounded memory):
/// * every length field is bounded by the bytes that remain;
/// * values nest at most `maxDepth` deep. Depths are tracked alongside the stack (no
///   recursion over the values), and a list or dict can no longer change once it sits
///   inside another container, so cycles cannot be built and the tracked depths are exact;
/// * tensors must have non-negative offsets, shapes and strides (checked again against
///   their storage when the data is read).
struct Unpickler {
    /// Deeper than any state dict (torch writes 3–6 levels; mmengine checkpoints ≤ 10).
    static let maxDepth = 100

    private let bytes: [UInt8]
    private var position = 0
    private var stack: [PickleValue] = []
    /// `depths[i]` is the nesting depth of `stack[i]` (0 for scalars).
    private var depths: [Int] = []
    private var marks: [Int] = []
    private var memo: [Int: (value: PickleValue, depth: Int)] = [:]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func load() throws -> PickleValue {
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try fixed(8)                                 // FRAME
            case 0x2E: return try pop().value                           // STOP '.'
            case 0x28: marks.append(stack.count)                        // MARK '('
            case 0x7D: push(.dict(PickleDict()), depth: 1)              // EMPTY_DICT '}'
            case 0x5D: push(.list(PickleList()), depth: 1)              // EMPTY_LIST ']'
            case 0x29: push(.tuple([]), depth: 1)                       // EMPTY_TUPLE ')'
            case 0x8F: push(.list(PickleList()), depth: 1)              // EMPTY_SET (read as a list)
            case 0x4E: push(.none)                                      // NONE 'N'
            case 0x88: push(.bool(true))                                // NEWTRUE
            case 0x89: push(.bool(false))                               // NEWFALSE
            case 0x4B: push(.int(Int(try byte())))                      // BININT1 'K'
            case 0x4D: push(.int(Int(try uint(2))))                     // BININT2 'M'
            case 0x4A: push(.int(Int(Int32(truncatingIfNeeded: try uint(4))))) // BININT 'J'
            case 0x8A:                                                  // LONG1
                let n = Int(try byte())
                let raw = try fixed(n)
                guard n <= 8 else { throw PickleError(message: "integer of \(n) bytes at byte \(position - n) is too large") }
                var v: Int64 = 0
                for (i, b) in raw.enumerated() { v |= Int64(b) << (8 * Int64(i)) }
                if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 { v -= Int64(1) << (8 * Int64(n)) }
                push(.int(Int(v)))
            case 0x47:                                                  // BINFLOAT 'G' (big-endian)
                let raw = try fixed(8)
                var bits: UInt64 = 0
                for b in raw { bits = bits << 8 | UInt64(b) }
                push(.float(Double(bitPattern: bits)))
            case 0x58: push(.string(try text(try length(4))))           // BINUNICODE 'X'
            case 0x8C: push(.string(try text(try length(1))))           // SHORT_BINUNICODE
            case 0x8D: push(.string(try text(try length(8))))           // BINUNICODE8
            case 0x54: push(.string(try text(try length(4))))           // BINSTRING 'T'
            case 0x55: push(.string(try text(try length(1))))           // SHORT_BINSTRING 'U'
            case 0x42: push(.bytes(try fixed(try length(4))))           // BINBYTES 'B'
            case 0x43: push(.bytes(try fixed(try length(1))))           // SHORT_BINBYTES 'C'
            case 0x8E: push(.bytes(try fixed(try length(8))))           // BINBYTES8
            case 0x71: memo[Int(try byte())] = try top()                // BINPUT 'q'
            case 0x72: memo[Int(try uint(4))] = try top()               // LONG_BINPUT 'r'
            case 0x94: memo[memo.count] = try top()                     // MEMOIZE
            case 0x68: try push(recall(Int(try byte())))                // BINGET 'h'
            case 0x6A: try push(recall(Int(try uint(4))))               // LONG_BINGET 'j'
            case 0x63:                                                  // GLOBAL 'c'
                let module = try line()
                let name = try line()
                push(.global(module: module, name: name))
            case 0x93:                                                  // STACK_GLOBAL
                let name = try pop().value.string ?? ""
                let module = try pop().value.string ?? ""
                push(.global(module: module, name: name))
            case 0x74: try pushTuple(try popMark())                     // TUPLE 't'
            case 0x85: try pushTuple([try pop()])                       // TUPLE1
            case 0x86:                                                  // TUPLE2
                let b = try pop(), a = try pop()
                try pushTuple([a, b])
            case 0x87:                                                  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                try pushTuple([a, b, c])
            case 0x6C, 0x91:                                            // LIST 'l', FROZENSET
                let l = PickleList()
                try append(try popMark(), to: l)
                push(.list(l), depth: l.depth)
            case 0x64:                                                  // DICT 'd'
                let items = try popMark()
                let d = PickleDict()
                try setItems(items, in: d)
                push(.dict(d), depth: d.depth)
            case 0x61:                                                  // APPEND 'a'
                let v = try pop()
                if case .list(let l) = try top().value { try append([v], to: l); raiseTopDepth(l.depth) }
            case 0x65, 0x90:                                            // APPENDS 'e', ADDITEMS
                let items = try popMark()
                if case .list(let l) = try top().value { try append(items, to: l); raiseTopDepth(l.depth) }
            case 0x73:                                                  // SETITEM 's'
                let v = try pop(), k = try pop()
                if case .dict(let d) = try top().value { try setItems([k, v], in: d); raiseTopDepth(d.depth) }
            case 0x75:                                                  // SETITEMS 'u'
                let items = try popMark()
                if case .dict(let d) = try top().value { try setItems(items, in: d); raiseTopDepth(d.depth) }
            case 0x30: _ = try pop()                                    // POP '0'
            case 0x31: _ = try popMark()                                // POP_MARK '1'
            case 0x32: try push(top())                                  // DUP '2'
            case 0x51:                                                  // BINPERSID 'Q'
                push(try persistentLoad(try pop().value))
            case 0x52:                                                  // REDUCE 'R'
                let args = try pop(), callable = try pop()
                try pushCall(callable, args)
            case 0x81:                                                  // NEWOBJ
                let args = try pop(), cls = try pop()
                try pushCall(cls, args)
            case 0x92:                                                  // NEWOBJ_EX
                _ = try pop()
                let args = try pop(), cls = try pop()
                try pushCall(cls, args)
            case 0x62:                                                  // BUILD 'b'
                // A TorchScript module (`__torch__.*`, an empty dict from `call`) takes its
                // attribute dict as its contents; any other object's state is ignored.
                let state = try pop()
                if case .dict(let target) = try top().value, target.keys.isEmpty, case .dict(let attributes) = state.value {
                    let items = zip(attributes.keys, attributes.values).flatMap { [($0, state.depth), ($1, state.depth)] }
                    try setItems(items, in: target)
                    raiseTopDepth(target.depth)
                }
            default:
                throw PickleError(message: String(format: "unsupported pickle opcode 0x%02X at byte %d", op, position - 1))
            }
        }
    }

    // MARK: the stack, with depths

    private mutating func push(_ value: PickleValue, depth: Int = 0) {
        stack.append(value)
        depths.append(depth)
    }

    private mutating func push(_ entry: (value: PickleValue, depth: Int)) {
        push(entry.value, depth: entry.depth)
    }

    /// The depth a container holding `items` gets; marks every list and dict among them
    /// sealed (they may no longer change) and refuses a container already sealed into
    /// another, or one that would nest deeper than `maxDepth`.
    private func nest(_ items: [(value: PickleValue, depth: Int)], into container: AnyObject? = nil) throws -> Int {
        var deepest = 0
        for item in items {
            var depth = item.depth
            // A list or dict carries its own depth: the copy on the stack or in the memo may
            // predate later APPEND/SETITEM calls.
            switch item.value {
            case .list(let l):
                if l === container { throw PickleError(message: "a list contains itself (cyclic pickle)") }
                l.sealed = true
                depth = max(depth, l.depth)
            case .dict(let d):
                if d === container { throw PickleError(message: "a dict contains itself (cyclic pickle)") }
                d.sealed = true
                depth = max(depth, d.depth)
            default: break
            }
            deepest = max(deepest, depth)
        }
        guard deepest < Unpickler.maxDepth else {
            throw PickleError(message: "values nested more than \(Unpickler.maxDepth) deep")
        }
        return deepest + 1
    }

    private mutating func pushTuple(_ items: [(value: PickleValue, depth: Int)]) throws {
        let depth = try nest(items)
        push(.tuple(items.map(\.value)), depth: depth)
    }

    private func append(_ items: [(value: PickleValue, depth: Int)], to list: PickleList) throws {
        guard !list.sealed else { throw PickleError(message: "a list is changed after being nested (cyclic pickle?)") }
        list.depth = max(list.depth, try nest(items, into: list))
        list.items.append(contentsOf: items.map(\.value))
    }

    private func setItems(_ items: [(value: PickleValue, depth: Int)], in dict: PickleDict) throws {
        guard !dict.sealed else { throw PickleError(message: "a dict is changed after being nested (cyclic pickle?)") }
        dict.depth = max(dict.depth, try nest(items, into: dict))
        for i in stride(from: 0, to: items.count - 1, by: 2) { dict.set(items[i].value, items[i + 1].value) }
    }

    /// After APPEND/SETITEM the container on top may be deeper than recorded.
    private mutating func raiseTopDepth(_ depth: Int) {
        if !depths.isEmpty { depths[depths.count - 1] = max(depths[depths.count - 1], depth) }
    }

    /// REDUCE/NEWOBJ: the result keeps the arguments' depth (a rebuilt tensor, an opaque
    /// object or the argument of `_rebuild_parameter`).
    private mutating func pushCall(_ callable: (value: PickleValue, depth: Int),
                                   _ args: (value: PickleValue, depth: Int)) throws {
        let depth = try nest([callable, args])
        push(try call(callable.value, args.value), depth: depth)
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
            guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
                throw PickleError(message: "tensor with a negative offset, size or stride (offset \(offset), shape \(shape), strides \(strides))")
            }
            return .tensor(PickleTensor(storage: storage, offset: offset, shape: shape, strides: strides))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            return argv.first ?? .none
        case ("collections", "OrderedDict"), ("builtins", "dict"), ("__builtin__", "dict"):
            return .dict(PickleDict())
        case (let m, _) where m == "__torch__" || m.hasPrefix("__torch__."):
            // A TorchScript module object (`torch.jit.save`): its attributes arrive by BUILD
            // as a dict; no class code is looked up or run.
            return .dict(PickleDict())
        default:
            return .object(callable: "\(module).\(name)")
        }
    }

    private func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let items) = pid, items.count >= 5, items[0].string == "storage" else {
            throw PickleError(message: "unsupported persistent id")
        }
        guard let key = items[2].string ?? items[2].int.map(String.init), let count = items[4].int, count >= 0 else {
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
        guard n >= 0, n <= bytes.count - position else { throw PickleError(message: "pickle ends early") }
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    private mutating func uint(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try fixed(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    /// A length field of `n` bytes, refused when it exceeds the bytes that remain (so a
    /// length of 2^64 − 1 is an error, not a trap or an allocation).
    private mutating func length(_ n: Int) throws -> Int {
        let at = position
        let value = try uint(n)
        guard value <= UInt64(bytes.count - position) else {
            throw PickleError(message: "length \(value) at byte \(at) exceeds the \(bytes.count - position) bytes that remain")
        }
        return Int(value)
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

    private mutating func pop() throws -> (value: PickleValue, depth: Int) {
        guard let v = stack.popLast(), let d = depths.popLast() else { throw PickleError(message: "pickle stack underflow") }
        return (v, d)
    }

    private func top() throws -> (value: PickleValue, depth: Int) {
        guard let v = stack.last, let d = depths.last else { throw PickleError(message: "pickle stack underflow") }
        return (v, d)
    }

    private mutating func popMark() throws -> [(value: PickleValue, depth: Int)] {
        guard let m = marks.popLast(), m <= stack.count else { throw PickleError(message: "pickle mark missing") }
        let items = zip(stack[m...], depths[m...]).map { (value: $0, depth: $1) }
        stack.removeSubrange(m...)
        depths.removeSubrange(m...)
        return items
    }

    private func recall(_ index: Int) throws -> (value: PickleValue, depth: Int) {
        guard let v = memo[index] else { throw PickleError(message: "pickle memo \(index) missing") }
        return v
    }
}
