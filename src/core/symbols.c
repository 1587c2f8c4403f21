/* Naming code addresses (see symbols.h): dladdr first, then the file's
 * own symbol table, read from a read-only mapping of the file that is
 * kept while consecutive frames lie in the same file. Every offset read
 * from the file is checked against its size: a truncated or foreign file
 * gives no name, never a fault.
 * SPDX-License-Identifier: MIT
 */
#include "core/symbols.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if __SIZEOF_POINTER__ == 8
#define SYM_TYPE(info) ELF64_ST_TYPE(info)
#define OUR_CLASS ELFCLASS64
#else
#define SYM_TYPE(info) ELF32_ST_TYPE(info)
#define OUR_CLASS ELFCLASS32
#endif

typedef ElfW(Sym) elf_sym;

/* The mapped file and its symbol table. */
struct object {
    const char *path; /* as dladdr names it (NULL: none mapped) */
    const unsigned char *map;
    size_t size;
    const elf_sym *syms;
    size_t nsyms;
    const char *strs;
    size_t strs_size;
    bool absolute; /* ET_EXEC: symbols hold run-time addresses */
};

static bool in_file(const struct object *o, uint64_t off, uint64_t len)
{
    return off <= o->size && len <= o->size - off;
}

/* Find .symtab and its string table in the mapped file. */
static void find_symtab(struct object *o)
{
    const ElfW(Ehdr) *eh = (const void *)o->map;

    if (!in_file(o, 0, sizeof *eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
        eh->e_ident[EI_CLASS] != OUR_CLASS ||
        eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        !in_file(o, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(ElfW(Shdr))))
        return;
    const ElfW(Shdr) *sh = (const void *)(o->map + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
            continue;
        const ElfW(Shdr) *str = &sh[sh[i].sh_link];
        if (!in_file(o, sh[i].sh_offset, sh[i].sh_size) ||
            !in_file(o, str->sh_offset, str->sh_size))
            return;
        o->syms = (const void *)(o->map + sh[i].sh_offset);
        o->nsyms = sh[i].sh_size / sizeof(elf_sym);
        o->strs = (const char *)o->map + str->sh_offset;
        o->strs_size = str->sh_size;
        o->absolute = eh->e_type == ET_EXEC;
        return;
    }
}

static void object_drop(struct object *o)
{
    if (o->map)
        munmap((void *)(uintptr_t)o->map, o->size);
    memset(o, 0, sizeof *o);
}

/* Map the file dladdr named `path` (the executable's name is how it was
 * started, which may no longer resolve: /proc/self/exe is that file). */
static void object_open(struct object *o, const char *path)
{
    object_drop(o);
    o->path = path;
    const char *file =
        strcmp(path, program_invocation_name) == 0 ? "/proc/self/exe" : path;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;

    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        void *m =
            mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            o->map = m;
            o->size = (size_t)st.st_size;
            find_symtab(o);
        }
    }
    close(fd);
}

/* The function symbol holding file address `addr`, or NULL. */
static const elf_sym *symtab_find(const struct object *o, uintptr_t addr)
{
    for (size_t i = 0; i < o->nsyms; i++) {
        const elf_sym *s = &o->syms[i];
        if (SYM_TYPE(s->st_info) == STT_FUNC && s->st_name &&
            s->st_name < o->strs_size && addr >= s->st_value &&
            addr - s->st_value < (s->st_size ? s->st_size : 1) &&
            memchr(o->strs + s->st_name, '\0', o->strs_size - s->st_name))
            return s;
    }
    return NULL;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

/* One frame's line into buf; returns what snprintf would have. */
static int format_frame(struct object *o, int i, const void *pc, char *buf,
                        size_t cap)
{
    /* A return address may be just past the function that made the call
     * (a call to a noreturn function ends it): look up the call itself. */
    uintptr_t at = (uintptr_t)pc - (i > 0);
    Dl_info info;

    if (!dladdr((void *)at, &info) || !info.dli_fname)
        return snprintf(buf, cap, "    #%d %p\n", i, pc);
    const char *file = base_name(info.dli_fname);
    uintptr_t base = (uintptr_t)info.dli_fbase;
    if (info.dli_sname && info.dli_saddr)
        return snprintf(buf, cap, "    #%d %s+%#lx (%s)\n", i, info.dli_sname,
                        (unsigned long)((uintptr_t)pc -
                                        (uintptr_t)info.dli_saddr),
                        file);
    if (o->path != info.dli_fname &&
        (!o->path || strcmp(o->path, info.dli_fname) != 0))
        object_open(o, info.dli_fname);
    uintptr_t rel = o->absolute ? at : at - base;
    const elf_sym *s = symtab_find(o, rel);
    if (s)
        return snprintf(buf, cap, "    #%d %s+%#lx (%s)\n", i,
                        o->strs + s->st_name,
                        (unsigned long)(rel + (i > 0) - s->st_value), file);
    /* What addr2line wants: a file address. */
    return snprintf(buf, cap, "    #%d %s+%#lx\n", i, file,
                    (unsigned long)((uintptr_t)pc - (o->absolute ? 0 : base)));
}

size_t tide__symbols_format(void *const *frames, int n, char *buf, size_t cap)
{
    struct object o = {0};
    size_t len = 0;
    int saved = errno;

    if (cap)
        buf[0] = '\0';
    for (int i = 0; i < n && len + 1 < cap; i++) {
        int w = format_frame(&o, i, frames[i], buf + len, cap - len);
        if (w < 0)
            break;
        len += (size_t)w < cap - len ? (size_t)w : cap - len - 1;
    }
    object_drop(&o);
    errno = saved;
    return len;
}
