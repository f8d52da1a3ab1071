#!/usr/bin/env python3
"""kafka_gen.py — generates Tidemark's Kafka wire codec from Apache Kafka's
JSON message schemas.

Usage (from the repository root, as `make codegen` does):

    python3 protocol/gen/kafka_gen.py ../shared/kafka-protocol protocol

Reads message/*.json (requests, responses and data records; header schemas
are coded by hand in kafka_codec.c), metadata/*.json (KRaft metadata
records), group-coordinator/*.json (__consumer_offsets keys and values),
transaction-coordinator/*.json and raft/QuorumStateData.json, and writes:

    <out>/kafka_msgs.h           structs, prototypes, API table, dispatch
    <out>/kafka_msgs_<n>.c       encode/decode/init, split in chunks so the
                                 build can compile them in parallel
    <out>/kafka_msgs_api.c       API table and dispatch by api key
    <out>/../tests/unit/test_protocol_gen.h
                                 sample fillers and deep equality for every
                                 struct, used by the round-trip tests

Stdlib only.  The output is deterministic (sorted inputs), so regenerating
without a schema change gives no diff.  See docs/protocol.md.
"""

import json
import os
import re
import sys

INF = 0x7FFF

C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do",
    "double", "else", "enum", "extern", "float", "for", "goto", "if",
    "inline", "int", "long", "register", "restrict", "return", "short",
    "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "bool", "true", "false",
    "errno", "v", "m", "r", "w", "a", "rc", "flex",
}

PRIMS = {
    # type: (ctype, fixed wire size or None, array helper suffix or None)
    "bool": ("bool", 1, None),
    "int8": ("int8_t", 1, "i8"),
    "int16": ("int16_t", 2, "i16"),
    "uint16": ("uint16_t", 2, None),
    "int32": ("int32_t", 4, "i32"),
    "uint32": ("uint32_t", 4, None),
    "int64": ("int64_t", 8, "i64"),
    "float64": ("double", 8, None),
    "uuid": ("struct kuuid", 16, "uuid"),
    "string": ("struct kstr", None, "string"),
    "bytes": ("struct kbytes", None, None),
    "records": ("struct kbytes", None, None),
}


def die(msg):
    sys.stderr.write("kafka_gen: " + msg + "\n")
    sys.exit(1)


def strip_comments(text):
    out = []
    for line in text.split("\n"):
        res = []
        in_str = False
        i = 0
        while i < len(line):
            c = line[i]
            if c == '"' and (i == 0 or line[i - 1] != "\\"):
                in_str = not in_str
            if not in_str and line[i:i + 2] == "//":
                break
            res.append(c)
            i += 1
        out.append("".join(res))
    return "\n".join(out)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.loads(strip_comments(f.read()))


def parse_vers(s):
    """'3+', '0-11', '5', 'none' -> (lo, hi) or None."""
    if s is None:
        return None
    s = str(s).strip()
    if s == "none" or s == "":
        return None
    if s.endswith("+"):
        return (int(s[:-1]), INF)
    if "-" in s:
        lo, hi = s.split("-")
        return (int(lo), int(hi))
    return (int(s), int(s))


def vers_intersect(a, b):
    if a is None or b is None:
        return None
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


def cond(vr, var="v"):
    """C expression true when version var is inside range vr."""
    if vr is None:
        return "false"
    lo, hi = vr
    parts = []
    if lo > 0:
        parts.append("%s >= %d" % (var, lo))
    if hi < INF:
        parts.append("%s <= %d" % (var, hi))
    if not parts:
        return "true"
    if len(parts) == 1:
        return parts[0]
    return "(" + " && ".join(parts) + ")"


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def field_ident(name):
    s = snake(name)
    if s in C_KEYWORDS:
        s += "_"
    return s


def int_literal(ctype, value):
    if ctype == "int64_t":
        if value == -(1 << 63):
            return "INT64_MIN"
        if value == (1 << 63) - 1:
            return "INT64_MAX"
        return "INT64_C(%d)" % value
    if ctype == "int32_t" and value == -(1 << 31):
        return "INT32_MIN"
    if ctype == "int32_t" and value == (1 << 31) - 1:
        return "INT32_MAX"
    if ctype in ("uint32_t",):
        return "UINT32_C(%d)" % value
    return "%d" % value


class Field:
    pass


class Struct:
    def __init__(self, cname, msg):
        self.cname = cname
        self.msg = msg
        self.fields = []
        self.json_fields = None


class Message:
    pass


def parse_default(f):
    d = f.get("default")
    if d is None:
        return None
    return str(d)


def build_message(path, d):
    m = Message()
    m.path = path
    m.name = d["name"]
    m.kind = d["type"]
    m.api_key = d.get("apiKey")
    m.valid = parse_vers(d["validVersions"])
    m.flex = parse_vers(d.get("flexibleVersions", "none"))
    m.cname = "kafka_" + snake(m.name)
    m.structs = {}        # struct type name -> Struct
    m.order = []          # structs in definition order (children first)
    # struct type definitions: commonStructs and inline "fields"
    defs = {}
    for cs in d.get("commonStructs", []):
        defs[cs["name"]] = cs["fields"]

    def collect(fields):
        for f in fields:
            t = f["type"]
            base = t[2:] if t.startswith("[]") else t
            if "fields" in f:
                if base in defs and defs[base] is not f["fields"] and \
                        json.dumps(defs[base], sort_keys=True) != json.dumps(f["fields"], sort_keys=True):
                    die("%s: struct %s defined twice differently" % (path, base))
                defs[base] = f["fields"]
                collect(f["fields"])
    collect(d.get("fields", []))
    for cs in d.get("commonStructs", []):
        collect(cs["fields"])

    def make_struct(sname, jfields, cname):
        if sname in m.structs:
            return m.structs[sname]
        s = Struct(cname, m)
        m.structs[sname] = s
        s.json_fields = jfields
        idents = set()
        for jf in jfields:
            f = Field()
            f.name = jf["name"]
            f.ident = field_ident(jf["name"])
            t = jf["type"]
            f.is_array = t.startswith("[]")
            base = t[2:] if f.is_array else t
            f.base = base
            f.tag = int(jf["tag"]) if "tag" in jf else None
            f.tagged = parse_vers(jf.get("taggedVersions")) if f.tag is not None else None
            vs = jf.get("versions")
            f.versions = parse_vers(vs) if vs is not None else f.tagged
            f.nullable = parse_vers(jf.get("nullableVersions"))
            f.default = parse_default(jf)
            if "flexibleVersions" in jf:
                die("%s: field-level flexibleVersions on %s not supported" % (path, f.name))
            if base in PRIMS:
                f.struct = None
                if f.is_array and PRIMS[base][2] is None:
                    die("%s: array of %s not supported" % (path, base))
            else:
                if base not in defs:
                    die("%s: unknown struct type %s" % (path, base))
                f.struct = make_struct(base, defs[base], m.cname + "_" + snake(base))
            for extra in ([f.ident] + ([f.ident + "_count"] if f.is_array else []) +
                          ([f.ident + "_present"] if (f.struct and not f.is_array and f.nullable) else [])):
                if extra in idents:
                    die("%s: identifier clash %s" % (path, extra))
                idents.add(extra)
            s.fields.append(f)
        m.order.append(s)
        return s

    m.top = make_struct("$top", d.get("fields", []), m.cname)
    return m


# ---------------------------------------------------------------------------
# C emission helpers

def is_nullable_struct(f):
    return f.struct is not None and not f.is_array and f.nullable is not None


def default_null(f):
    return f.default is not None and f.default.lower() in ("null", "none")


def scalar_default_expr(f):
    """C initializer for a scalar field's default value."""
    ctype = PRIMS[f.base][0]
    d = f.default
    if f.base == "bool":
        return "true" if (d is not None and d.lower() == "true") else "false"
    if f.base in ("int8", "int16", "uint16", "int32", "uint32", "int64"):
        if d is None or d == "":
            return "0"
        val = int(d, 0)
        return int_literal(ctype, val)
    if f.base == "float64":
        if d is None or d == "":
            return "0.0"
        return repr(float(d))
    die("no scalar default for %s" % f.base)


def is_scalar(f):
    return not f.is_array and f.struct is None and f.base not in ("string", "bytes", "records", "uuid")


def min_wire_expr(f, flexvar="flex"):
    """Minimum encoded size of the field (non-tagged)."""
    if f.is_array:
        return "(%s ? 1u : 4u)" % flexvar
    if f.struct is not None:
        if f.nullable is not None:
            return "1u"
        return "%s_min_(v)" % f.struct.cname
    if f.base == "string":
        return "(%s ? 1u : 2u)" % flexvar
    if f.base in ("bytes", "records"):
        return "(%s ? 1u : 4u)" % flexvar
    return "%du" % PRIMS[f.base][1]


class Out:
    def __init__(self):
        self.lines = []

    def __call__(self, s=""):
        self.lines.append(s)

    def text(self):
        return "\n".join(self.lines) + "\n"


def emit_struct_decl(o, s):
    o("struct %s {" % s.cname)
    if not s.fields:
        o("\tuint8_t unused_; /* no fields: C needs a member */")
    for f in s.fields:
        vtxt = "versions %s" % vr_text(f.versions)
        if f.tag is not None:
            vtxt += ", tag %d" % f.tag
        if f.nullable is not None:
            vtxt += ", nullable %s" % vr_text(f.nullable)
        if f.default is not None:
            vtxt += ", default %s" % f.default
        if f.is_array:
            if f.struct is not None:
                o("\tstruct %s *%s; /* %s */" % (f.struct.cname, f.ident, vtxt))
            else:
                o("\t%s *%s; /* %s */" % (PRIMS[f.base][0], f.ident, vtxt))
            o("\tint32_t %s_count; /* -1: null */" % f.ident)
        elif f.struct is not None:
            o("\tstruct %s %s; /* %s */" % (f.struct.cname, f.ident, vtxt))
            if f.nullable is not None:
                o("\tbool %s_present; /* false: null */" % f.ident)
        else:
            o("\t%s %s; /* %s */" % (PRIMS[f.base][0], f.ident, vtxt))
    o("};")
    o()


def vr_text(vr):
    if vr is None:
        return "none"
    lo, hi = vr
    if hi == INF:
        return "%d+" % lo
    if lo == hi:
        return "%d" % lo
    return "%d-%d" % (lo, hi)


def emit_defaults(o, s):
    o("static void %s_defaults_(struct %s *m)" % (s.cname, s.cname))
    o("{")
    o("\tmemset(m, 0, sizeof(*m));")
    for f in s.fields:
        if f.is_array:
            if default_null(f):
                o("\tm->%s_count = -1;" % f.ident)
        elif f.struct is not None:
            o("\t%s_defaults_(&m->%s);" % (f.struct.cname, f.ident))
            if f.nullable is not None:
                o("\tm->%s_present = %s;" % (f.ident, "false" if default_null(f) or f.default is None else "true"))
        elif f.base == "string":
            if default_null(f):
                o("\tm->%s = kstr_null();" % f.ident)
            elif f.default:
                o("\tm->%s = kstr_c(%s);" % (f.ident, json.dumps(f.default)))
        elif f.base in ("bytes", "records"):
            if default_null(f):
                o("\tm->%s = kbytes_null();" % f.ident)
        elif f.base == "uuid":
            pass
        else:
            e = scalar_default_expr(f)
            if e not in ("0", "false", "0.0"):
                o("\tm->%s = %s;" % (f.ident, e))
    o("}")
    o()


def emit_min(o, s):
    o("static size_t %s_min_(int16_t v)" % s.cname)
    o("{")
    o("\tconst bool flex = %s;" % cond(s.msg.flex))
    o("\tsize_t n = flex ? 1u : 0u;")
    for f in s.fields:
        c = untagged_cond(f)
        if c == "false":
            continue
        o("\tif (%s)" % c)
        o("\t\tn += %s;" % min_wire_expr(f))
    o("\treturn n;")
    o("}")
    o()


def untagged_cond(f):
    """Versions where f is present and not tagged."""
    if f.versions is None:
        return "false"
    if f.tagged is None:
        return cond(f.versions)
    # present minus tagged; schemas only use tagged == versions, or tagged
    # a suffix of versions
    if f.tagged == f.versions:
        return "false"
    if f.tagged[1] == INF and f.tagged[0] > f.versions[0]:
        return cond((f.versions[0], f.tagged[0] - 1))
    die("%s: unsupported tagged/untagged version mix on %s" % (f.struct, f.name))


def tagged_cond(f):
    if f.tagged is None:
        return None
    return cond(vers_intersect(f.tagged, f.versions))


def emit_field_decode(o, f, rv, flex, ind):
    """Decodes field f from reader expression rv into m->ident."""
    t = "\t" * ind
    nul = cond(f.nullable)
    if f.is_array:
        if f.struct is not None:
            o(t + "{")
            o(t + "\tint32_t n;")
            o(t + "\trc = kafka_rd_array_len(%s, %s, %s, %s_min_(v), &n);" % (rv, flex, nul, f.struct.cname))
            o(t + "\tif (rc)")
            o(t + "\t\treturn rc;")
            o(t + "\tm->%s_count = n;" % f.ident)
            o(t + "\tm->%s = NULL;" % f.ident)
            o(t + "\tif (n > 0) {")
            o(t + "\t\tm->%s = arena_alloc(a, (size_t)n * sizeof(*m->%s));" % (f.ident, f.ident))
            o(t + "\t\tif (!m->%s)" % f.ident)
            o(t + "\t\t\treturn -ENOMEM;")
            o(t + "\t\tfor (int32_t i = 0; i < n; i++) {")
            o(t + "\t\t\trc = %s_rd_(%s, v, &m->%s[i], a);" % (f.struct.cname, rv, f.ident))
            o(t + "\t\t\tif (rc)")
            o(t + "\t\t\t\treturn rc;")
            o(t + "\t\t}")
            o(t + "\t}")
            o(t + "}")
        else:
            o(t + "rc = kafka_rd_array_%s(%s, %s, %s, a, &m->%s, &m->%s_count);" %
              (PRIMS[f.base][2], rv, flex, nul, f.ident, f.ident))
            o(t + "if (rc)")
            o(t + "\treturn rc;")
        return
    if f.struct is not None:
        if f.nullable is not None:
            o(t + "if (%s) {" % nul)
            if flex == "true" and f.tag is not None:
                o(t + "\tuint32_t mk = rd_uvarint(%s);" % rv)
                o(t + "\tm->%s_present = mk > 0;" % f.ident)
            else:
                o(t + "\tint8_t mk = rd_i8(%s);" % rv)
                o(t + "\tm->%s_present = mk >= 0;" % f.ident)
            o(t + "} else {")
            o(t + "\tm->%s_present = true;" % f.ident)
            o(t + "}")
            o(t + "if (m->%s_present) {" % f.ident)
            o(t + "\trc = %s_rd_(%s, v, &m->%s, a);" % (f.struct.cname, rv, f.ident))
            o(t + "\tif (rc)")
            o(t + "\t\treturn rc;")
            o(t + "}")
        else:
            o(t + "rc = %s_rd_(%s, v, &m->%s, a);" % (f.struct.cname, rv, f.ident))
            o(t + "if (rc)")
            o(t + "\treturn rc;")
        return
    b = f.base
    if b == "string":
        o(t + "rc = kafka_rd_string(%s, %s, %s, &m->%s);" % (rv, flex, nul, f.ident))
        o(t + "if (rc)")
        o(t + "\treturn rc;")
    elif b in ("bytes", "records"):
        o(t + "rc = kafka_rd_bytes(%s, %s, %s, &m->%s);" % (rv, flex, nul, f.ident))
        o(t + "if (rc)")
        o(t + "\treturn rc;")
    elif b == "uuid":
        o(t + "kafka_rd_uuid(%s, &m->%s);" % (rv, f.ident))
    elif b == "bool":
        o(t + "m->%s = rd_i8(%s) != 0;" % (f.ident, rv))
    else:
        rd = {"int8": "rd_i8", "int16": "rd_i16", "uint16": "rd_u16", "int32": "rd_i32",
              "uint32": "rd_u32", "int64": "rd_i64", "float64": "rd_f64"}[b]
        o(t + "m->%s = %s(%s);" % (f.ident, rd, rv))


def emit_field_encode(o, f, flex, ind):
    t = "\t" * ind
    nul = cond(f.nullable)
    if f.is_array:
        if f.struct is not None:
            o(t + "kafka_wr_array_len(w, %s, %s, m->%s_count);" % (flex, nul, f.ident))
            o(t + "for (int32_t i = 0; i < m->%s_count; i++)" % f.ident)
            o(t + "\t%s_wr_(w, v, &m->%s[i]);" % (f.struct.cname, f.ident))
        else:
            o(t + "kafka_wr_array_%s(w, %s, %s, m->%s, m->%s_count);" %
              (PRIMS[f.base][2], flex, nul, f.ident, f.ident))
        return
    if f.struct is not None:
        if f.nullable is not None:
            o(t + "if (%s) {" % nul)
            if flex == "true" and f.tag is not None:
                o(t + "\twr_uvarint(w, m->%s_present ? 1u : 0u);" % f.ident)
            else:
                o(t + "\twr_i8(w, m->%s_present ? 1 : -1);" % f.ident)
            o(t + "\tif (m->%s_present)" % f.ident)
            o(t + "\t\t%s_wr_(w, v, &m->%s);" % (f.struct.cname, f.ident))
            o(t + "} else {")
            o(t + "\t%s_wr_(w, v, &m->%s);" % (f.struct.cname, f.ident))
            o(t + "}")
        else:
            o(t + "%s_wr_(w, v, &m->%s);" % (f.struct.cname, f.ident))
        return
    b = f.base
    if b == "string":
        o(t + "kafka_wr_string(w, %s, %s, m->%s);" % (flex, nul, f.ident))
    elif b in ("bytes", "records"):
        o(t + "kafka_wr_bytes(w, %s, %s, m->%s);" % (flex, nul, f.ident))
    elif b == "uuid":
        o(t + "kafka_wr_uuid(w, &m->%s);" % f.ident)
    elif b == "bool":
        o(t + "wr_i8(w, m->%s ? 1 : 0);" % f.ident)
    elif b == "uint16":
        o(t + "wr_i16(w, (int16_t)m->%s);" % f.ident)
    else:
        wr = {"int8": "wr_i8", "int16": "wr_i16", "int32": "wr_i32", "uint32": "wr_u32",
              "int64": "wr_i64", "float64": "wr_f64"}[b]
        o(t + "%s(w, m->%s);" % (wr, f.ident))


def nondefault_expr(f, p="m->"):
    """C expression: field differs from its schema default (Kafka writes a
    tagged field only then)."""
    x = p + f.ident
    if f.is_array:
        return "%s_count != %d" % (x, -1 if default_null(f) else 0)
    if f.struct is not None:
        if f.nullable is not None:
            if default_null(f) or f.default is None:
                return "%s_present" % x
            return "(!%s_present || !%s_isdef_(&%s))" % (x, f.struct.cname, x)
        return "!%s_isdef_(&%s)" % (f.struct.cname, x)
    b = f.base
    if b == "string":
        if default_null(f):
            return "%s.len != -1" % x
        if f.default:
            return "!kstr_eq(%s, %s)" % (x, json.dumps(f.default))
        return "%s.len != 0" % x
    if b in ("bytes", "records"):
        return "%s.len != %d" % (x, -1 if default_null(f) else 0)
    if b == "uuid":
        return "!kuuid_is_zero(&%s)" % x
    return "%s != %s" % (x, scalar_default_expr(f))


def tagged_fields(s):
    tf = [f for f in s.fields if f.tag is not None and f.tagged is not None]
    tf.sort(key=lambda f: f.tag)
    tags = [f.tag for f in tf]
    if len(set(tags)) != len(tags):
        die("%s: duplicate tags" % s.cname)
    return tf


def emit_rd(o, s):
    o("static int %s_rd_(struct tm_rd *r, int16_t v, struct %s *m, struct tm_arena *a)" % (s.cname, s.cname))
    o("{")
    o("\tconst bool flex = %s;" % cond(s.msg.flex))
    o("\tint rc = 0;")
    o("\t(void)flex;")
    o("\t(void)a;")
    o("\t%s_defaults_(m);" % s.cname)
    for f in s.fields:
        c = untagged_cond(f)
        if c == "false":
            continue
        if c == "true":
            emit_field_decode(o, f, "r", "flex", 1)
        else:
            o("\tif (%s) {" % c)
            emit_field_decode(o, f, "r", "flex", 2)
            o("\t}")
    tf = tagged_fields(s)
    if s.msg.flex is not None:
        o("\tif (flex) {")
        if not tf:
            o("\t\trc = kafka_rd_skip_tagged(r);")
            o("\t\tif (rc)")
            o("\t\t\treturn rc;")
        else:
            o("\t\tuint32_t ntags = rd_uvarint(r);")
            o("\t\tfor (uint32_t t = 0; t < ntags && !r->err; t++) {")
            o("\t\t\tuint32_t tag = rd_uvarint(r);")
            o("\t\t\tuint32_t size = rd_uvarint(r);")
            o("\t\t\tconst uint8_t *p = rd_take(r, size);")
            o("\t\t\tif (!p)")
            o("\t\t\t\treturn -EBADMSG;")
            o("\t\t\tstruct tm_rd sub;")
            o("\t\t\trd_init(&sub, p, size);")
            o("\t\t\tswitch (tag) {")
            for f in tf:
                o("\t\t\tcase %d:" % f.tag)
                o("\t\t\t\tif (!(%s))" % tagged_cond(f))
                o("\t\t\t\t\tbreak;")
                emit_field_decode(o, f, "&sub", "true", 4)
                o("\t\t\t\tif (sub.err)")
                o("\t\t\t\t\treturn -EBADMSG;")
                o("\t\t\t\tbreak;")
            o("\t\t\tdefault:")
            o("\t\t\t\tbreak; /* unknown tag: skipped */")
            o("\t\t\t}")
            o("\t\t}")
        o("\t}")
    o("\treturn r->err ? -EBADMSG : rc;")
    o("}")
    o()


def emit_wr(o, s):
    o("static void %s_wr_(struct tm_wbuf *w, int16_t v, const struct %s *m)" % (s.cname, s.cname))
    o("{")
    o("\tconst bool flex = %s;" % cond(s.msg.flex))
    o("\t(void)flex;")
    for f in s.fields:
        c = untagged_cond(f)
        if c == "false":
            continue
        if c == "true":
            emit_field_encode(o, f, "flex", 1)
        else:
            o("\tif (%s) {" % c)
            emit_field_encode(o, f, "flex", 2)
            o("\t}")
    tf = tagged_fields(s)
    if s.msg.flex is not None:
        o("\tif (flex) {")
        if not tf:
            o("\t\twr_uvarint(w, 0);")
        else:
            o("\t\tuint32_t ntags = 0;")
            for f in tf:
                o("\t\tconst bool put_%s = %s && %s;" % (f.ident, tagged_cond(f), nondefault_expr(f)))
                o("\t\tntags += put_%s;" % f.ident)
            o("\t\twr_uvarint(w, ntags);")
            for f in tf:
                o("\t\tif (put_%s) {" % f.ident)
                o("\t\t\tsize_t at = kafka_wr_tag_begin(w, %d);" % f.tag)
                emit_field_encode(o, f, "true", 3)
                o("\t\t\tkafka_wr_tag_end(w, at);")
                o("\t\t}")
        o("\t}")
    o("}")
    o()


def emit_isdef(o, s):
    o("static bool %s_isdef_(const struct %s *m)" % (s.cname, s.cname))
    o("{")
    if not s.fields:
        o("\t(void)m;")
    o("\treturn true")
    for f in s.fields:
        o("\t\t&& !(%s)" % nondefault_expr(f))
    o("\t\t;")
    o("}")
    o()


def isdef_closure(msgs):
    need = set()
    work = []
    for m in msgs:
        for s in m.order:
            for f in s.fields:
                if f.tag is not None and f.struct is not None and not f.is_array:
                    work.append(f.struct)
    while work:
        s = work.pop()
        if s.cname in need:
            continue
        need.add(s.cname)
        for f in s.fields:
            if f.struct is not None and not f.is_array:
                work.append(f.struct)
    return need


def emit_message_code(o, m, need_isdef):
    o("/* ---- %s (%s, versions %s) ---- */" % (m.name, os.path.relpath(m.path, SCHEMA_ROOT), vr_text(m.valid)))
    o()
    for s in m.order:
        o("static void %s_defaults_(struct %s *m);" % (s.cname, s.cname))
        # only array element types need their minimum size
        o("static size_t %s_min_(int16_t v) __attribute__((unused));" % s.cname)
        o("static int %s_rd_(struct tm_rd *r, int16_t v, struct %s *m, struct tm_arena *a);" % (s.cname, s.cname))
        o("static void %s_wr_(struct tm_wbuf *w, int16_t v, const struct %s *m);" % (s.cname, s.cname))
        if s.cname in need_isdef:
            o("static bool %s_isdef_(const struct %s *m) __attribute__((unused));" % (s.cname, s.cname))
    o()
    for s in m.order:
        emit_defaults(o, s)
        emit_min(o, s)
        if s.cname in need_isdef:
            emit_isdef(o, s)
        emit_rd(o, s)
        emit_wr(o, s)
    c = m.cname
    o("void %s_init(struct %s *m)" % (c, c))
    o("{")
    o("\t%s_defaults_(m);" % c)
    o("}")
    o()
    o("int %s_decode(struct tm_rd *r, int16_t version, struct %s *out, struct tm_arena *a)" % (c, c))
    o("{")
    o("\tint rc = %s_rd_(r, version, out, a);" % c)
    o("\tif (rc == 0 && r->err)")
    o("\t\trc = -EBADMSG;")
    o("\treturn rc;")
    o("}")
    o()
    o("void %s_encode(struct tm_wbuf *w, int16_t version, const struct %s *in)" % (c, c))
    o("{")
    o("\t%s_wr_(w, version, in);" % c)
    o("}")
    o()


# ---------------------------------------------------------------------------
# test support: sample fillers and deep equality

def emit_test_struct(o, s):
    c = s.cname
    o("static void tg_fill_%s(struct %s *m, int16_t v, int variant, struct tm_arena *a, unsigned *k);" % (c, c))
    o("static bool tg_eq_%s(const struct %s *x, const struct %s *y);" % (c, c, c))


def emit_test_fill(o, s):
    c = s.cname
    o("static void tg_fill_%s(struct %s *m, int16_t v, int variant, struct tm_arena *a, unsigned *k)" % (c, c))
    o("{")
    o("\t(void)v; (void)variant; (void)a; (void)k;")
    o("\t%s_defaults_tg(m);" % c)
    for f in s.fields:
        pres = cond(f.versions)
        if pres == "false":
            continue
        nul = cond(f.nullable)
        o("\tif (%s) {" % pres)
        x = "m->" + f.ident
        if f.is_array:
            o("\t\tif (variant == 1) {")
            o("\t\t\t%s_count = (%s) ? -1 : 0;" % (x, nul))
            o("\t\t} else {")
            o("\t\t\t%s_count = 2;" % x)
            if f.struct is not None:
                o("\t\t\t%s = arena_alloc(a, 2 * sizeof(*%s));" % (x, x))
                o("\t\t\tfor (int i = 0; i < 2; i++)")
                o("\t\t\t\ttg_fill_%s(&%s[i], v, variant, a, k);" % (f.struct.cname, x))
            else:
                o("\t\t\t%s = arena_alloc(a, 2 * sizeof(*%s));" % (x, x))
                o("\t\t\tfor (int i = 0; i < 2; i++)")
                if f.base == "string":
                    o("\t\t\t\t%s[i] = tg_str(a, k);" % x)
                elif f.base == "uuid":
                    o("\t\t\t\t%s[i] = tg_uuid(k);" % x)
                else:
                    o("\t\t\t\t%s[i] = (%s)tg_next(k);" % (x, PRIMS[f.base][0]))
            o("\t\t}")
        elif f.struct is not None:
            if f.nullable is not None:
                o("\t\tif (variant == 1 && (%s)) {" % nul)
                o("\t\t\t%s_present = false;" % x)
                o("\t\t} else {")
                o("\t\t\t%s_present = true;" % x)
                o("\t\t\ttg_fill_%s(&%s, v, variant, a, k);" % (f.struct.cname, x))
                o("\t\t}")
            else:
                o("\t\ttg_fill_%s(&%s, v, variant, a, k);" % (f.struct.cname, x))
        else:
            b = f.base
            if b == "string":
                o("\t\t%s = (variant == 1 && (%s)) ? kstr_null() : tg_str(a, k);" % (x, nul))
            elif b in ("bytes", "records"):
                o("\t\t%s = (variant == 1 && (%s)) ? kbytes_null() : tg_bytes(a, k);" % (x, nul))
            elif b == "uuid":
                o("\t\t%s = tg_uuid(k);" % x)
            elif b == "bool":
                o("\t\t%s = !(%s);" % (x, scalar_default_expr(f)))
            elif b == "float64":
                o("\t\t%s = %s + 1.5 + (double)tg_next(k);" % (x, scalar_default_expr(f)))
            else:
                ct = PRIMS[b][0]
                o("\t\t%s = (%s)(%s ^ (%s)(1 + tg_next(k) %% 100));" % (x, ct, scalar_default_expr(f), ct))
        o("\t}")
    o("}")
    o()


def emit_test_eq(o, s):
    c = s.cname
    o("static bool tg_eq_%s(const struct %s *x, const struct %s *y)" % (c, c, c))
    o("{")
    if not s.fields:
        o("\t(void)x; (void)y;")
    for f in s.fields:
        n = f.ident
        if f.is_array:
            o("\tif (x->%s_count != y->%s_count)" % (n, n))
            o("\t\treturn false;")
            o("\tfor (int32_t i = 0; i < x->%s_count; i++) {" % n)
            if f.struct is not None:
                o("\t\tif (!tg_eq_%s(&x->%s[i], &y->%s[i]))" % (f.struct.cname, n, n))
            elif f.base == "string":
                o("\t\tif (!kstr_equal(x->%s[i], y->%s[i]))" % (n, n))
            elif f.base == "uuid":
                o("\t\tif (!kuuid_equal(&x->%s[i], &y->%s[i]))" % (n, n))
            else:
                o("\t\tif (x->%s[i] != y->%s[i])" % (n, n))
            o("\t\t\treturn false;")
            o("\t}")
        elif f.struct is not None:
            if f.nullable is not None:
                o("\tif (x->%s_present != y->%s_present)" % (n, n))
                o("\t\treturn false;")
            o("\tif (!tg_eq_%s(&x->%s, &y->%s))" % (f.struct.cname, n, n))
            o("\t\treturn false;")
        elif f.base == "string":
            o("\tif (!kstr_equal(x->%s, y->%s))" % (n, n))
            o("\t\treturn false;")
        elif f.base in ("bytes", "records"):
            o("\tif (!kbytes_equal(x->%s, y->%s))" % (n, n))
            o("\t\treturn false;")
        elif f.base == "uuid":
            o("\tif (!kuuid_equal(&x->%s, &y->%s))" % (n, n))
            o("\t\treturn false;")
        else:
            o("\tif (x->%s != y->%s)" % (n, n))
            o("\t\treturn false;")
    o("\treturn true;")
    o("}")
    o()


def emit_test_defaults(o, s):
    """Tests cannot reach the static _defaults_ of nested structs, so the
    test header re-derives them; a disagreement with the library shows up
    as a round-trip failure (decode applies the library's defaults)."""
    emit = Out()
    emit_defaults(emit, s)
    for line in emit.lines:
        o(line.replace("_defaults_(", "_defaults_tg(").replace("static void", "static void"))


# ---------------------------------------------------------------------------

SCHEMA_ROOT = ""


def newer_schema(root, path, d):
    """Kafka 4.1's schema of the same message when it only adds versions
    (same lowest version, higher highest): e.g. VoteRequest v2 with PreVote.
    Schemas from which 4.1 removed old versions (KIP-896) stay as they are,
    so old clients keep working."""
    rel = os.path.relpath(path, root)
    alt = os.path.join(root, "kafka-4.1", rel)
    if not os.path.exists(alt):
        return None
    nd = load(alt)
    old, new = parse_vers(d.get("validVersions")), parse_vers(nd.get("validVersions"))
    if old is None or new is None or new[0] != old[0] or new[1] <= old[1]:
        return None
    return alt, nd


def main():
    global SCHEMA_ROOT
    if len(sys.argv) != 3:
        die("usage: kafka_gen.py <kafka-protocol dir> <out dir>")
    root, outdir = sys.argv[1], sys.argv[2]
    SCHEMA_ROOT = root
    files = []
    for sub in ("message", "metadata", "group-coordinator", "transaction-coordinator"):
        d = os.path.join(root, sub)
        files += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".json")]
    files.append(os.path.join(root, "raft", "QuorumStateData.json"))

    msgs = []
    for p in files:
        d = load(p)
        newer = newer_schema(root, p, d)
        if newer is not None:
            p, d = newer
        if d["type"] == "header":
            continue  # request/response headers are coded by hand (kafka_codec.c)
        msgs.append(build_message(p, d))

    # global C name uniqueness
    seen = {}
    for m in msgs:
        for s in m.order:
            if s.cname in seen:
                die("C struct name clash: %s (%s and %s)" % (s.cname, seen[s.cname], m.path))
            seen[s.cname] = m.path

    need_isdef = isdef_closure(msgs)

    apis = {}
    for m in msgs:
        if m.kind in ("request", "response"):
            apis.setdefault(m.api_key, {})[m.kind] = m
    for k, v in apis.items():
        if "request" not in v or "response" not in v:
            die("api %d lacks a request or response" % k)
        rq, rs = v["request"], v["response"]
        if rq.valid != rs.valid:
            die("api %d: request/response versions differ" % k)
    mdrecs = sorted([m for m in msgs if m.kind == "metadata"], key=lambda m: m.api_key)

    gen_header(outdir, msgs, apis, mdrecs)
    gen_sources(outdir, msgs, need_isdef)
    gen_api(outdir, msgs, apis, mdrecs)
    gen_tests(outdir, msgs, apis)


GEN_NOTE = ("/* Generated by protocol/gen/kafka_gen.py from Apache Kafka's message schemas.\n"
            " * Do not edit: change the generator and run `make codegen`. */\n")


def api_enum_name(m):
    n = m.name[:-len("Request")] if m.name.endswith("Request") else m.name
    return "KAFKA_API_" + snake(n).upper()


def gen_header(outdir, msgs, apis, mdrecs):
    o = Out()
    o("/*")
    o(" * kafka_msgs.h — every Kafka request, response and data record as a C struct,")
    o(" * with its decoder and encoder.  GENERATED by protocol/gen/kafka_gen.py; see")
    o(" * docs/protocol.md.  Do not edit: change the generator and run `make codegen`.")
    o(" *")
    o(" * For each schema N (e.g. ProduceRequest) there is struct kafka_n (e.g.")
    o(" * struct kafka_produce_request) and")
    o(" *")
    o(" *   int  kafka_n_decode(struct tm_rd *r, int16_t version, struct kafka_n *out,")
    o(" *                       struct tm_arena *a);")
    o(" *        0, -EBADMSG (truncated, malformed, a count larger than the bytes left)")
    o(" *        or -ENOMEM (arena).  *out is first set to the schema defaults, so a")
    o(" *        field absent at `version` reads as its default.  Strings and bytes")
    o(" *        point into r's buffer; arrays live in the arena.  Unknown tagged")
    o(" *        fields are skipped.")
    o(" *   void kafka_n_encode(struct tm_wbuf *w, int16_t version, const struct kafka_n *in);")
    o(" *        Writes the fields that exist at `version`; tagged fields only when")
    o(" *        they differ from their default (as Kafka does).  Errors stick in w->err.")
    o(" *   void kafka_n_init(struct kafka_n *m);   zero + schema defaults")
    o(" *")
    o(" * Field mapping: JSON name -> snake_case (TopicID -> topic_id; a C keyword")
    o(" * gets a trailing underscore).  []T -> `T *x; int32_t x_count;` (count -1 =")
    o(" * null).  A struct-typed field is embedded; when nullable it has a")
    o(" * `bool x_present`.  Nested struct types are named kafka_<message>_<type>.")
    o(" * The request/response headers are in kafka_codec.h.")
    o(" */")
    o("#ifndef TM_KAFKA_MSGS_H")
    o("#define TM_KAFKA_MSGS_H")
    o()
    o("#include <stdbool.h>")
    o("#include <stddef.h>")
    o("#include <stdint.h>")
    o()
    o('#include "common/arena.h"')
    o('#include "common/bytes.h"')
    o('#include "protocol/kafka_types.h"')
    o()
    o("/* API keys */")
    o("enum kafka_api_key {")
    for k in sorted(apis):
        o("\t%s = %d," % (api_enum_name(apis[k]["request"]), k))
    o("};")
    o("#define KAFKA_API_KEY_MAX %d" % max(apis))
    o()
    o("/* KRaft metadata record types (the apiKey of each metadata/ schema) */")
    o("enum kafka_metadata_record_type {")
    for m in mdrecs:
        n = m.name[:-len("Record")] if m.name.endswith("Record") else m.name
        o("\tKAFKA_METADATA_%s = %d," % (snake(n).upper(), m.api_key))
    o("};")
    o("#define KAFKA_METADATA_RECORD_TYPE_MAX %d" % max(m.api_key for m in mdrecs))
    o()
    for m in msgs:
        o("/* %s: versions %s, flexible %s */" % (m.name, vr_text(m.valid), vr_text(m.flex)))
        for s in m.order:
            emit_struct_decl(o, s)
    o("/* ---- functions ---- */")
    o()
    for m in msgs:
        c = m.cname
        o("int %s_decode(struct tm_rd *r, int16_t version, struct %s *out, struct tm_arena *a);" % (c, c))
        o("void %s_encode(struct tm_wbuf *w, int16_t version, const struct %s *in);" % (c, c))
        o("void %s_init(struct %s *m);" % (c, c))
    o()
    o("""/* ---- the API table and dispatch by api key ---- */

struct kafka_api_desc {
	int16_t key;
	const char *name;      /* "Produce" */
	int16_t min_version, max_version;
	int16_t flexible_min;  /* first flexible version; -1: never */
};

/* NULL when the key is unknown. */
const struct kafka_api_desc *kafka_api_lookup(int16_t api_key);
/* Number of entries and the i-th one (ascending key order), for ApiVersions. */
size_t kafka_api_count(void);
const struct kafka_api_desc *kafka_api_at(size_t i);

/*
 * Dispatch by api key.  out/in point to the struct kafka_<api>_request (or
 * _response) for that key; kafka_request_struct_size() says how big it is
 * (0 for an unknown key).  The decoders return 0, -EBADMSG, -ENOMEM, or
 * -ENOTSUP for an unknown key or a version outside the schema's range; the
 * encoders return 0 or -ENOTSUP (write errors stick in w->err).
 */
size_t kafka_request_struct_size(int16_t api_key);
size_t kafka_response_struct_size(int16_t api_key);
int kafka_request_body_decode(int16_t api_key, int16_t version, struct tm_rd *r, void *out,
			      struct tm_arena *a);
int kafka_response_body_decode(int16_t api_key, int16_t version, struct tm_rd *r, void *out,
			       struct tm_arena *a);
int kafka_request_body_encode(int16_t api_key, int16_t version, struct tm_wbuf *w,
			      const void *in);
int kafka_response_body_encode(int16_t api_key, int16_t version, struct tm_wbuf *w,
			       const void *in);
int kafka_request_init(int16_t api_key, void *out);
int kafka_response_init(int16_t api_key, void *out);

/*
 * The same for KRaft metadata records by record type (apiKey in
 * each metadata/ schema): struct kafka_<name>_record.
 */
struct kafka_metadata_record_desc {
	int16_t type;
	const char *name;      /* "TopicRecord" */
	int16_t max_version;
	size_t struct_size;
};
const struct kafka_metadata_record_desc *kafka_metadata_record_lookup(int16_t type);
int kafka_metadata_record_decode(int16_t type, int16_t version, struct tm_rd *r, void *out,
				 struct tm_arena *a);
int kafka_metadata_record_encode(int16_t type, int16_t version, struct tm_wbuf *w,
				 const void *in);

/* Request/response headers (hand-written) */
#include "protocol/kafka_codec.h"

#endif""")
    write(os.path.join(outdir, "kafka_msgs.h"), o.text())


def write(path, text):
    old = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    if old != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def gen_sources(outdir, msgs, need_isdef):
    chunks = []
    cur = []
    size = 0
    target = 12000
    for m in msgs:
        o = Out()
        emit_message_code(o, m, need_isdef)
        cur.append(o.text())
        size += len(o.lines)
        if size >= target:
            chunks.append(cur)
            cur = []
            size = 0
    if cur:
        chunks.append(cur)
    # remove stale chunk files
    for f in os.listdir(outdir):
        if re.match(r"kafka_msgs_\d+\.c$", f) and int(f[11:-2]) >= len(chunks):
            os.remove(os.path.join(outdir, f))
    for i, parts in enumerate(chunks):
        head = ("/*\n * kafka_msgs_%d.c — part %d of the generated Kafka codec (see kafka_msgs.h).\n"
                " * GENERATED by protocol/gen/kafka_gen.py.  Do not edit.\n */\n"
                "#include <errno.h>\n#include <string.h>\n\n"
                '#include "protocol/kafka_msgs.h"\n#include "protocol/kafka_wire.h"\n\n') % (i, i)
        write(os.path.join(outdir, "kafka_msgs_%d.c" % i), head + "\n".join(parts))


def gen_api(outdir, msgs, apis, mdrecs):
    o = Out()
    o("/*")
    o(" * kafka_msgs_api.c — the API table and dispatch by api key (see kafka_msgs.h).")
    o(" * GENERATED by protocol/gen/kafka_gen.py.  Do not edit.")
    o(" */")
    o("#include <errno.h>")
    o()
    o('#include "protocol/kafka_msgs.h"')
    o()
    o("static const struct kafka_api_desc kafka_apis[] = {")
    for k in sorted(apis):
        rq = apis[k]["request"]
        name = rq.name[:-len("Request")]
        fl = rq.flex[0] if rq.flex is not None else -1
        o('\t{ %d, "%s", %d, %d, %d },' % (k, name, rq.valid[0], rq.valid[1], fl))
    o("};")
    o()
    o("""size_t kafka_api_count(void)
{
	return sizeof(kafka_apis) / sizeof(kafka_apis[0]);
}

const struct kafka_api_desc *kafka_api_at(size_t i)
{
	return i < kafka_api_count() ? &kafka_apis[i] : NULL;
}

const struct kafka_api_desc *kafka_api_lookup(int16_t api_key)
{
	for (size_t i = 0; i < kafka_api_count(); i++)
		if (kafka_apis[i].key == api_key)
			return &kafka_apis[i];
	return NULL;
}

static bool version_ok(int16_t api_key, int16_t version)
{
	const struct kafka_api_desc *d = kafka_api_lookup(api_key);
	return d && version >= d->min_version && version <= d->max_version;
}
""")
    for kind in ("request", "response"):
        o("size_t kafka_%s_struct_size(int16_t api_key)" % kind)
        o("{")
        o("\tswitch (api_key) {")
        for k in sorted(apis):
            o("\tcase %d: return sizeof(struct %s);" % (k, apis[k][kind].cname))
        o("\tdefault: return 0;")
        o("\t}")
        o("}")
        o()
        o("int kafka_%s_body_decode(int16_t api_key, int16_t version, struct tm_rd *r, void *out,"
          " struct tm_arena *a)" % kind)
        o("{")
        o("\tif (!version_ok(api_key, version))")
        o("\t\treturn -ENOTSUP;")
        o("\tswitch (api_key) {")
        for k in sorted(apis):
            o("\tcase %d: return %s_decode(r, version, out, a);" % (k, apis[k][kind].cname))
        o("\tdefault: return -ENOTSUP;")
        o("\t}")
        o("}")
        o()
        o("int kafka_%s_body_encode(int16_t api_key, int16_t version, struct tm_wbuf *w, const void *in)" % kind)
        o("{")
        o("\tif (!version_ok(api_key, version))")
        o("\t\treturn -ENOTSUP;")
        o("\tswitch (api_key) {")
        for k in sorted(apis):
            o("\tcase %d: %s_encode(w, version, in); return 0;" % (k, apis[k][kind].cname))
        o("\tdefault: return -ENOTSUP;")
        o("\t}")
        o("}")
        o()
        o("int kafka_%s_init(int16_t api_key, void *out)" % kind)
        o("{")
        o("\tswitch (api_key) {")
        for k in sorted(apis):
            o("\tcase %d: %s_init(out); return 0;" % (k, apis[k][kind].cname))
        o("\tdefault: return -ENOTSUP;")
        o("\t}")
        o("}")
        o()
    o("static const struct kafka_metadata_record_desc kafka_mdrecs[] = {")
    for m in mdrecs:
        o('\t{ %d, "%s", %d, sizeof(struct %s) },' % (m.api_key, m.name, m.valid[1], m.cname))
    o("};")
    o()
    o("""const struct kafka_metadata_record_desc *kafka_metadata_record_lookup(int16_t type)
{
	for (size_t i = 0; i < sizeof(kafka_mdrecs) / sizeof(kafka_mdrecs[0]); i++)
		if (kafka_mdrecs[i].type == type)
			return &kafka_mdrecs[i];
	return NULL;
}
""")
    o("int kafka_metadata_record_decode(int16_t type, int16_t version, struct tm_rd *r, void *out,"
      " struct tm_arena *a)")
    o("{")
    o("\tconst struct kafka_metadata_record_desc *d = kafka_metadata_record_lookup(type);")
    o("\tif (!d || version < 0 || version > d->max_version)")
    o("\t\treturn -ENOTSUP;")
    o("\tswitch (type) {")
    for m in mdrecs:
        o("\tcase %d: return %s_decode(r, version, out, a);" % (m.api_key, m.cname))
    o("\tdefault: return -ENOTSUP;")
    o("\t}")
    o("}")
    o()
    o("int kafka_metadata_record_encode(int16_t type, int16_t version, struct tm_wbuf *w, const void *in)")
    o("{")
    o("\tconst struct kafka_metadata_record_desc *d = kafka_metadata_record_lookup(type);")
    o("\tif (!d || version < 0 || version > d->max_version)")
    o("\t\treturn -ENOTSUP;")
    o("\tswitch (type) {")
    for m in mdrecs:
        o("\tcase %d: %s_encode(w, version, in); return 0;" % (m.api_key, m.cname))
    o("\tdefault: return -ENOTSUP;")
    o("\t}")
    o("}")
    write(os.path.join(outdir, "kafka_msgs_api.c"), o.text())


def gen_tests(outdir, msgs, apis):
    o = Out()
    o("/*")
    o(" * test_protocol_gen.h — sample fillers and deep equality for every generated")
    o(" * Kafka struct, and a round-trip case per message.  GENERATED by")
    o(" * protocol/gen/kafka_gen.py; included by tests/unit/test_protocol.c only.")
    o(" *")
    o(" * tg_fill_X(m, v, variant, ...) sets every field present at version v to a")
    o(" * non-default value (variant 0) or to null / empty where the schema allows")
    o(" * (variant 1); fields absent at v keep their defaults, so after")
    o(" * encode -> decode the whole struct must compare equal with tg_eq_X.")
    o(" */")
    o("#ifndef TM_TEST_PROTOCOL_GEN_H")
    o("#define TM_TEST_PROTOCOL_GEN_H")
    o()
    o("#include <stdio.h>")
    o("#include <string.h>")
    o('#include "protocol/kafka_msgs.h"')
    o()
    o("""static unsigned tg_next(unsigned *k)
{
	return (*k)++;
}

static struct kstr tg_str(struct tm_arena *a, unsigned *k)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "s%u", tg_next(k));
	struct kstr s = { arena_strndup(a, buf, (size_t)n), n };
	return s;
}

static struct kbytes tg_bytes(struct tm_arena *a, unsigned *k)
{
	unsigned n = 1 + tg_next(k) % 7;
	uint8_t *p = arena_alloc(a, n);
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(n * 31 + i);
	struct kbytes b = kbytes_make(p, n);
	return b;
}

static struct kuuid tg_uuid(unsigned *k)
{
	struct kuuid u;
	unsigned x = tg_next(k);
	for (int i = 0; i < 16; i++)
		u.b[i] = (uint8_t)(x + 1 + i);
	return u;
}
""")
    for m in msgs:
        for s in m.order:
            emit_test_struct(o, s)
            o("static void %s_defaults_tg(struct %s *m);" % (s.cname, s.cname))
    o()
    for m in msgs:
        for s in m.order:
            emit_test_defaults(o, s)
            emit_test_fill(o, s)
            emit_test_eq(o, s)
    o("typedef void (*tg_fill_fn)(void *m, int16_t v, int variant, struct tm_arena *a, unsigned *k);")
    o("typedef bool (*tg_eq_fn)(const void *x, const void *y);")
    o("typedef int (*tg_dec_fn)(struct tm_rd *r, int16_t v, void *out, struct tm_arena *a);")
    o("typedef void (*tg_enc_fn)(struct tm_wbuf *w, int16_t v, const void *in);")
    o()
    o("struct tg_case {")
    o("\tconst char *name;")
    o("\tint16_t min_version, max_version;")
    o("\tsize_t size;")
    o("\tvoid (*fill)(void *m, int16_t v, int variant, struct tm_arena *a, unsigned *k);")
    o("\tbool (*eq)(const void *x, const void *y);")
    o("\tint (*decode)(struct tm_rd *r, int16_t v, void *out, struct tm_arena *a);")
    o("\tvoid (*encode)(struct tm_wbuf *w, int16_t v, const void *in);")
    o("};")
    o()
    # type-correct thunks (calling through a cast function pointer is UB)
    for m in msgs:
        c = m.cname
        o("static void tgc_fill_%s(void *m, int16_t v, int variant, struct tm_arena *a, unsigned *k)"
          " { tg_fill_%s(m, v, variant, a, k); }" % (c, c))
        o("static bool tgc_eq_%s(const void *x, const void *y) { return tg_eq_%s(x, y); }" % (c, c))
        o("static int tgc_dec_%s(struct tm_rd *r, int16_t v, void *out, struct tm_arena *a)"
          " { return %s_decode(r, v, out, a); }" % (c, c))
        o("static void tgc_enc_%s(struct tm_wbuf *w, int16_t v, const void *in)"
          " { %s_encode(w, v, in); }" % (c, c))
    o()
    o("static const struct tg_case tg_cases[] = {")
    for m in msgs:
        c = m.cname
        o('\t{ "%s", %d, %d, sizeof(struct %s), tgc_fill_%s, tgc_eq_%s, tgc_dec_%s, tgc_enc_%s },' %
          (m.name, m.valid[0], m.valid[1], c, c, c, c, c))
    o("};")
    o()
    o("#endif")
    path = os.path.normpath(os.path.join(outdir, "..", "tests", "unit", "test_protocol_gen.h"))
    write(path, o.text())


if __name__ == "__main__":
    main()
