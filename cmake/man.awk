# man.awk: tide's man pages, generated from the comments of the public
# headers (they document every declaration; this only lays them out).
#
#   awk -v outdir=DIR -v version=X.Y.Z -f cmake/man.awk \
#       include/tide.h include/tide/*.h <build>/include/tide/version.h
#
# Writes DIR/tide.3, the whole reference (every declaration with its
# comment, section by section), and DIR/NAME.3 for every function and
# struct type: its group of declarations, their comment, the section's
# paragraph and the functions beside it. CMake runs it (CMakeLists.txt).
#
# What it reads, the shape the headers keep: a file's first comment is
# its introduction; a comment "/* ---- Title ---- ... */" opens a section
# (its text is the section's paragraph); any other comment documents the
# declarations right after it, up to the next blank line (a comment
# right after a declaration, with no blank line, continues that group);
# a comment after code on its line is that declaration's own note.
# Declarations are TIDE_API functions (a page each), typedefs (a page
# for each struct, union or enum), #defines and any other declaration
# (shown in tide(3) as written); include guards, #include and extern "C"
# lines are skipped. A line that starts none of these stops the build
# with its file and line, so nothing is dropped unseen. Any POSIX awk
# (mawk, gawk, busybox).
# SPDX-License-Identifier: MIT

BEGIN {
    nfile = 0; nsec = 0; ngrp = 0; failed = 0
    if (outdir == "" || version == "") {
        print "man.awk: usage: awk -v outdir=DIR -v version=X.Y.Z -f man.awk HEADER..." > "/dev/stderr"
        failed = 1
        exit 1
    }
}

FNR == 1 { start_file() }

{ process($0) }

END {
    if (failed)
        exit 1
    if (initem || incomment) {
        warn("unterminated declaration or comment at end of input")
        exit 1
    }
    close_group()
    write_reference()
    for (g = 1; g <= ngrp; g++)
        for (i = 1; i <= gn[g]; i++)
            if (ikind[g, i] == "func" || ikind[g, i] == "struct")
                write_page(g, iname[g, i])
}

function warn(msg) {
    print "man.awk: " FILENAME ":" FNR ": " msg > "/dev/stderr"
    failed = 1
}

# ---- reading ---------------------------------------------------------

function start_file(   d) {
    if (nfile > 0 && (initem || incomment))
        warn("previous file ends inside a declaration or comment")
    close_group()
    nfile++
    d = FILENAME
    sub(/^.*\/include\//, "", d)
    sub(/^include\//, "", d)
    fname[nfile] = d
    fintro[nfile] = ""
    seen_code = 0
    # An untitled section for what comes before the file's first banner.
    new_section("", "")
}

function new_section(title, text) {
    close_group()
    nsec++
    stitle[nsec] = title
    stext[nsec] = text
    sfile[nsec] = nfile
}

function process(line) {
    if (incomment) {
        comment_line(line)
        return
    }
    if (initem) {
        item_line(line)
        return
    }
    if (line ~ /^[ \t]*$/) {
        close_group()
        last_was_code = 0
        return
    }
    if (line ~ /^[ \t]*\/\*/) {
        begin_comment(line, seen_code ? "doc" : "intro")
        return
    }
    seen_code = 1
    if (line ~ /^#/) {
        preprocessor(line)
        return
    }
    if (line ~ /^(extern "C" \{|\})[ \t]*$/)
        return
    if (line ~ /^TIDE_API[ \t]/)
        begin_item(line, "func")
    else if (line ~ /^typedef[ \t]/)
        begin_item(line, line ~ /\{/ ? "struct" : "typedef")
    else if (line ~ /^[A-Za-z_]/)
        begin_item(line, "other")
    else
        warn("not understood (see the top of cmake/man.awk): " line)
}

function preprocessor(line,   name) {
    if (line ~ /^#define[ \t]/) {
        name = line
        sub(/^#define[ \t]+/, "", name)
        sub(/[^A-Za-z_0-9].*$/, "", name)
        # An include guard, or TIDE_API itself: not part of the API.
        if (name == "TIDE_API" || (name ~ /_H$/ && line ~ /^#define[ \t]+[A-Z_]+[ \t]*$/))
            return
        begin_item(line, "macro")
        return
    }
    # #include, #if, #ifdef, #ifndef, #else, #endif: skipped, with any
    # comment they carry.
    if (line ~ /\/\*/ && line !~ /\*\//) {
        incomment = 1
        ctarget = "drop"
        cbuf = ""
    }
}

# A comment; `target` is what it will be: "intro", "doc", "note" (of the
# item just read) or "drop".
function begin_comment(line, target) {
    incomment = 1
    ctarget = target
    cbuf = ""
    comment_line(line)
}

function comment_line(line,   end) {
    end = (line ~ /\*\//)
    add_comment_text(comment_text(line))
    if (end) {
        incomment = 0
        end_comment()
    }
}

# One line of a comment as text: without /*, the leading " * ", */ and
# trailing blanks; indentation beyond that is kept (list continuations).
function comment_text(s) {
    sub(/\*\/.*$/, "", s)
    if (s ~ /^[ \t]*\/\*/)
        sub(/^[ \t]*\/\*/, "", s)
    else
        sub(/^[ \t]*\*/, "", s)
    sub(/^ /, "", s)
    sub(/[ \t]+$/, "", s)
    return s
}

function add_comment_text(s) {
    if (s ~ /SPDX-License-Identifier/)
        return
    cbuf = (cbuf == "" && s == "") ? "" : (cbuf == "" ? s : cbuf "\n" s)
}

function end_comment(   text, title, rest, nl) {
    text = cbuf
    sub(/\n+$/, "", text)
    if (ctarget == "drop")
        return
    if (ctarget == "note") {
        inote[ngrp, gn[ngrp]] = inote[ngrp, gn[ngrp]] (inote[ngrp, gn[ngrp]] == "" ? "" : " ") text
        return
    }
    if (ctarget == "intro") {
        fintro[nfile] = text
        return
    }
    if (text ~ /^---- /) {
        nl = index(text, "\n")
        title = nl ? substr(text, 1, nl - 1) : text
        rest = nl ? substr(text, nl + 1) : ""
        sub(/^---- */, "", title)
        sub(/ *-*$/, "", title)
        new_section(title, rest)
        last_was_code = 0
        return
    }
    if (grp_open && last_was_code) {
        # Right after a declaration: the same group goes on.
        gdoc[ngrp] = gdoc[ngrp] "\n\n" text
        return
    }
    close_group()
    pending = text
    have_pending = 1
}

function open_group() {
    ngrp++
    gsec[ngrp] = nsec
    gdoc[ngrp] = have_pending ? pending : ""
    gn[ngrp] = 0
    have_pending = 0
    pending = ""
    grp_open = 1
}

# A blank line (or a new section or file) ends the group; a comment that
# documented nothing becomes a group of its own, prose in tide(3).
function close_group() {
    if (have_pending) {
        open_group()
    }
    grp_open = 0
}

function begin_item(line, kind) {
    if (!grp_open)
        open_group()
    gn[ngrp]++
    ikind[ngrp, gn[ngrp]] = kind
    icode[ngrp, gn[ngrp]] = ""
    inote[ngrp, gn[ngrp]] = ""
    idepth = 0
    iopened = 0
    initem = 1
    item_line(line)
}

# Adds one line to the item being read and ends the item at its last
# line: a ';' for functions and typedefs (the closing "} name;" for a
# struct), the line without a trailing backslash for a #define, and for
# any other declaration the ';' or, once it has opened a brace, the line
# that closes the last one (a struct, an enum, a static inline body).
function item_line(line,   i, code, note, done, k, t) {
    i = gn[ngrp]
    k = ikind[ngrp, i]
    code = line
    note = ""
    if (k == "struct") {
        done = (line ~ /^}.*;/)
    } else if (k == "other") {
        t = line
        iopened += gsub(/\{/, "", t)
        idepth += gsub(/\{/, "{", line) - gsub(/\}/, "}", line)
        done = idepth <= 0 && (iopened ? line ~ /\}/ : line ~ /;/)
    } else if (k == "macro") {
        done = (line !~ /\\$/)
    } else {
        done = (line ~ /;/)
    }
    # A comment after the code on the item's last line is its note.
    if (done && k != "struct" && k != "other" && match(code, /[ \t]*\/\*/)) {
        note = substr(code, RSTART)
        code = substr(code, 1, RSTART - 1)
    }
    icode[ngrp, i] = icode[ngrp, i] == "" ? code : icode[ngrp, i] "\n" code
    if (!done)
        return
    initem = 0
    last_was_code = 1
    iname[ngrp, i] = item_name(icode[ngrp, i], k)
    if (iname[ngrp, i] == "" && k != "other")
        warn("no name found in: " icode[ngrp, i])
    if (note != "")
        begin_comment(note, "note")
}

function item_name(code, kind,   s) {
    s = code
    gsub(/\n/, " ", s)
    if (kind == "macro") {
        sub(/^#define[ \t]+/, "", s)
        sub(/[^A-Za-z_0-9].*$/, "", s)
        return s
    }
    if (kind == "struct") {
        sub(/^.*}[ \t]*/, "", s)
        sub(/[ \t]*;.*$/, "", s)
        return s
    }
    if (kind == "typedef" && match(s, /\(\*[ \t]*[A-Za-z_0-9]+[ \t]*\)/)) {
        s = substr(s, RSTART + 2, RLENGTH - 3)
        gsub(/[ \t]/, "", s)
        return s
    }
    if (kind == "typedef") {
        sub(/[ \t]*;.*$/, "", s)
        sub(/^.*[^A-Za-z_0-9]/, "", s)
        return s
    }
    if (!match(s, /[A-Za-z_][A-Za-z_0-9]*[ \t]*\(/))
        return ""
    s = substr(s, RSTART, RLENGTH - 1)
    gsub(/[ \t]/, "", s)
    return s
}

# ---- roff ------------------------------------------------------------

# Every `from` in s replaced by `to`, literally (gsub's replacement
# text treats backslashes differently from one awk to the next).
function replace(s, from, to,   out, i) {
    out = ""
    while ((i = index(s, from)) > 0) {
        out = out substr(s, 1, i - 1) to
        s = substr(s, i + length(from))
    }
    return out s
}

function replace_first(s, from, to,   i) {
    i = index(s, from)
    return i ? substr(s, 1, i - 1) to substr(s, i + length(from)) : s
}

# Text for roff: backslashes escaped, a '-' that starts a word (-EINVAL,
# -1, -fstack-clash-protection) as a minus sign, `code` in italics.
function roff(s,   out) {
    s = replace(s, "\\", "\\e")
    out = ""
    while (match(s, /(^|[^A-Za-z0-9])-/)) {
        out = out substr(s, 1, RSTART + RLENGTH - 2) "\\-"
        s = substr(s, RSTART + RLENGTH)
    }
    s = out s
    out = ""
    while (match(s, /`[^`]*`/)) {
        out = out substr(s, 1, RSTART - 1) "\\fI" substr(s, RSTART + 1, RLENGTH - 2) "\\fP"
        s = substr(s, RSTART + RLENGTH)
    }
    return out s
}

# A line of output that must not be read as a roff request.
function safe(s) {
    return (s ~ /^[.']/) ? "\\&" s : s
}

# Code for a .nf block: every '-' a minus, backslashes escaped, the
# declared name in bold.
function code_lines(code, kind, name,   n, lines, i, s, out) {
    n = split(code, lines, "\n")
    out = ""
    for (i = 1; i <= n; i++) {
        s = lines[i]
        if (kind == "func") {
            sub(/^TIDE_API[ \t]+/, "", s)
            if (i > 1)
                sub(/^[ \t]+/, "    ", s)
        }
        s = replace(s, "\\", "\\e")
        s = replace(s, "-", "\\-")
        if (kind == "func" && name != "")
            s = replace_first(s, name "(", "\\fB" name "\\fP(")
        out = out safe(s) "\n"
    }
    return out
}

# Comment text as filled paragraphs: a blank line starts a paragraph, a
# line "- ..." a bullet item (continued by indented lines).
function paragraphs(text,   n, lines, i, s, out, inlist) {
    n = split(text, lines, "\n")
    out = ""
    inlist = 0
    for (i = 1; i <= n; i++) {
        s = lines[i]
        if (s == "") {
            out = out ".PP\n"
            inlist = 0
            continue
        }
        if (s ~ /^- /) {
            out = out ".IP \\(bu 2\n"
            s = substr(s, 3)
            inlist = 1
        } else if (inlist && s !~ /^  /) {
            out = out ".PP\n"
            inlist = 0
        }
        sub(/^[ \t]+/, "", s)
        out = out safe(roff(s)) "\n"
    }
    return out
}

# The first sentence of a comment, cut to fit a NAME line.
function summary(text,   s, i, cut) {
    s = text
    gsub(/\n/, " ", s)
    if (match(s, /\.( |$)/))
        s = substr(s, 1, RSTART - 1)
    if (length(s) > 72) {
        cut = 0
        for (i = 16; i <= 72; i++)
            if (substr(s, i, 1) ~ /[,;:(]/)
                cut = i
        i = 72
        while (cut == 0 && i > 16 && substr(s, i, 1) != " ")
            i--
        s = substr(s, 1, (cut ? cut : i) - 1)
        sub(/[ ,;:]+$/, "", s)
        s = s " ..."
    }
    return s
}

function th(name) {
    return ".TH " name " 3 \"\" \"tide " version "\" \"tide manual\"\n.nh\n.ad l\n"
}

# ---- tide(3): the whole reference ------------------------------------

function write_reference(   out, f, s, g, i, any) {
    out = th("tide")
    out = out ".SH NAME\ntide \\- asyncio for C: event loops, stackful tasks, futures\n"
    out = out ".SH SYNOPSIS\n.nf\n.B #include <tide.h>\n.PP\n"
    out = out ".B cc app.c $(pkg\\-config \\-\\-cflags \\-\\-libs tide)\n"
    out = out ".B cc app.c $(pkg\\-config \\-\\-static \\-\\-cflags \\-\\-libs tide\\-static)\n.fi\n"
    out = out ".SH DESCRIPTION\n" paragraphs(fintro[1])
    out = out ".PP\nEvery function also has a page of its own, such as\n.BR tide_sleep (3).\n"
    for (f = 1; f <= nfile; f++) {
        out = out ".SH \"" toupper(fname[f]) "\"\n"
        if (f > 1 && fintro[f] != "")
            out = out paragraphs(fintro[f])
        for (s = 1; s <= nsec; s++) {
            if (sfile[s] != f)
                continue
            if (stitle[s] != "")
                out = out ".SS \"" stitle[s] "\"\n"
            if (stext[s] != "")
                out = out paragraphs(stext[s])
            for (g = 1; g <= ngrp; g++) {
                if (gsec[g] != s)
                    continue
                out = out ".PP\n"
                if (gn[g] > 0) {
                    out = out ".nf\n"
                    for (i = 1; i <= gn[g]; i++) {
                        out = out code_lines(icode[g, i], ikind[g, i], iname[g, i])
                    }
                    out = out ".fi\n"
                }
                any = notes(g)
                if (gdoc[g] != "" || any != "") {
                    if (gn[g] > 0)
                        out = out ".RS 4\n"
                    if (gdoc[g] != "")
                        out = out paragraphs(gdoc[g])
                    out = out any
                    if (gn[g] > 0)
                        out = out ".RE\n"
                }
            }
        }
    }
    emit(outdir "/tide.3", out)
}

# The items' own notes ("false if NULL"), one paragraph each.
function notes(g,   i, out) {
    out = ""
    for (i = 1; i <= gn[g]; i++)
        if (inote[g, i] != "")
            out = out ".PP\n\\fB" iname[g, i] "\\fP: " roff(inote[g, i]) "\n"
    return out
}

# ---- one page per function or struct ---------------------------------

function write_page(g, name,   out, i, names, s, h, see, sep) {
    names = ""
    for (i = 1; i <= gn[g]; i++)
        if (ikind[g, i] == "func" || ikind[g, i] == "struct")
            names = names (names == "" ? "" : ", ") iname[g, i]
    s = gsec[g]
    out = th(name)
    out = out ".SH NAME\n" names " \\- " \
        roff(gdoc[g] != "" ? summary(gdoc[g]) : (stitle[s] != "" ? stitle[s] : fname[sfile[s]])) "\n"
    out = out ".SH SYNOPSIS\n.nf\n.B #include <tide.h>\n.PP\n"
    for (i = 1; i <= gn[g]; i++)
        out = out code_lines(icode[g, i], ikind[g, i], iname[g, i])
    out = out ".fi\n.PP\nLink with \\fB$(pkg\\-config \\-\\-libs tide)\\fP.\n"
    out = out ".SH DESCRIPTION\n"
    if (gdoc[g] != "")
        out = out paragraphs(gdoc[g])
    out = out notes(g)
    if (stext[s] != "")
        out = out ".SS \"" stitle[s] "\"\n" paragraphs(stext[s])
    if (sfile[s] > 1 && fintro[sfile[s]] != "")
        out = out ".SS \"" fname[sfile[s]] "\"\n" paragraphs(fintro[sfile[s]])
    out = out ".PP\nThe conventions every function follows (errors, NULL loops, suspending\ncalls, references) are in\n.BR tide (3).\n"
    see = ".BR tide (3)"
    for (h = 1; h <= ngrp; h++) {
        if (h == g || gsec[h] != s)
            continue
        for (i = 1; i <= gn[h]; i++)
            if (ikind[h, i] == "func" || ikind[h, i] == "struct")
                see = see ",\n.BR " iname[h, i] " (3)"
    }
    out = out ".SH \"SEE ALSO\"\n" see "\n"
    emit(outdir "/" name ".3", out)
}

function emit(path, text) {
    printf "%s", text > path
    close(path)
}
