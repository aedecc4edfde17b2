"""The small part of XSD regular expressions the CATS schemas use.

`to_python` translates an XSD pattern into an anchored Python regex (for
checking generated values); `sample` produces a string that matches one.
"""

import re

# Unicode category Z (separators): what \P{Z} excludes.
_Z = " \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def to_python(pattern):
    out = []
    i = 0
    in_class = False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1]
            if nxt in "pP":
                end = pattern.index("}", i)
                name = pattern[i + 3:end]
                neg = nxt == "P"
                if name == "IsBasicLatin":
                    body = "\\x00-\\x7f"
                elif name == "Z":
                    body = _Z
                else:
                    raise ValueError(f"unsupported \\p{{{name}}}")
                if in_class:
                    if neg:
                        raise ValueError("negated property inside a class")
                    out.append(body)
                else:
                    out.append(("[^" if neg else "[") + body + "]")
                i = end + 1
                continue
            out.append(c + nxt)
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        elif c == "." and not in_class:
            out.append("[^\\n\\r]")
            i += 1
            continue
        out.append(c)
        i += 1
    return re.compile("(?:" + "".join(out) + ")\\Z")


# ---------------------------------------------------------------- sampler

class _P:
    def __init__(self, s):
        self.s, self.i = s, 0

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else None

    def take(self):
        c = self.s[self.i]
        self.i += 1
        return c


def _parse_alt(p):
    alts = [_parse_seq(p)]
    while p.peek() == "|":
        p.take()
        alts.append(_parse_seq(p))
    return ("alt", alts)


def _parse_seq(p):
    items = []
    while p.peek() is not None and p.peek() not in "|)":
        atom = _parse_atom(p)
        lo, hi = 1, 1
        c = p.peek()
        if c == "*":
            p.take()
            lo, hi = 0, None
        elif c == "+":
            p.take()
            lo, hi = 1, None
        elif c == "?":
            p.take()
            lo, hi = 0, 1
        elif c == "{":
            p.take()
            spec = ""
            while p.peek() != "}":
                spec += p.take()
            p.take()
            if "," in spec:
                a, b = spec.split(",")
                lo, hi = int(a), (int(b) if b else None)
            else:
                lo = hi = int(spec)
        items.append((atom, lo, hi))
    return ("seq", items)


def _chars_of_escape(c):
    if c == "d":
        return "0123456789"
    return c


def _parse_atom(p):
    c = p.take()
    if c == "(":
        node = _parse_alt(p)
        p.take()
        return node
    if c == ".":
        return ("any",)
    if c == "\\":
        n = p.take()
        if n in "pP":
            p.take()
            name = ""
            while p.peek() != "}":
                name += p.take()
            p.take()
            return ("prop", n == "P", name)
        return ("set", _chars_of_escape(n), False)
    if c == "[":
        neg = False
        if p.peek() == "^":
            p.take()
            neg = True
        chars = ""
        first = True
        while p.peek() != "]" or first:
            first = False
            a = p.take()
            if a == "\\":
                a = _chars_of_escape(p.take())
                chars += a
                continue
            if p.peek() == "-" and p.s[p.i + 1] != "]":
                p.take()
                b = p.take()
                if b == "\\":
                    b = p.take()
                chars += "".join(chr(x) for x in range(ord(a), ord(b) + 1))
            else:
                chars += a
        p.take()
        return ("set", chars, neg)
    return ("set", c, False)


PREFERRED = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz"


def _pick(node, k):
    kind = node[0]
    if kind == "any":
        return PREFERRED[k % 26]
    if kind == "prop":
        return PREFERRED[k % 26]
    chars, neg = node[1], node[2]
    if neg:
        for ch in PREFERRED[k % 26:] + PREFERRED:
            if ch not in chars:
                return ch
    good = [ch for ch in PREFERRED if ch in chars]
    if good:
        return good[k % len(good)]
    return chars[k % len(chars)]


def _gen(node, want, k):
    kind = node[0]
    if kind == "alt":
        return _gen(node[1][0], want, k)
    if kind == "seq":
        out = ""
        for atom, lo, hi in node[1]:
            n = lo if want == "min" else max(lo, min(hi if hi is not None else lo + 3, want))
            for j in range(n):
                out += _gen(atom, want, k + j + len(out))
        return out
    return _pick(node, k)


def sample(pattern, want="min", alternative=0):
    """A string matching `pattern`; want is "min" or a preferred repeat count."""
    tree = _parse_alt(_P(pattern))
    alts = tree[1]
    node = alts[min(alternative, len(alts) - 1)]
    return _gen(node, want, 0)


def alternatives(pattern):
    return len(_parse_alt(_P(pattern))[1])
