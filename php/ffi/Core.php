<?php
// The C core through PHP's FFI: the declarations come from cext/acceptloop.h itself, the part
// between its "cdef: begin" and "cdef: end" markers that cext/build_ffi.py hands to cffi, so
// that the header stays the one source of truth for every host.
declare(strict_types=1);

namespace AcceptLoop\Ffi;

final class Core
{
    // php-ffi step: load the core
    /**
     * The core's library, declared from the header: FFI::cdef parses the declarations and
     * resolves every function they name in the library at once (dlopen, then dlsym for each).
     *
     * @throws \FFI\Exception when the library cannot be loaded or a declaration not parsed
     * @throws \RuntimeException when the header has no cdef block, or a #define FFI cannot take
     */
    public static function load(string $header, string $library): \FFI
    {
        $exported = self::exportedBy($library);
        return \FFI::cdef(self::declarations($header, $exported), $library);
    }
    // end php-ffi step

    /**
     * The header's cdef block as FFI::cdef takes it. FFI's parser knows no preprocessor: each
     * `#define NAME <integer>` becomes `enum { NAME = <integer> };`, which FFI reads as a
     * constant ($ffi->AL_ERROR_LEN) and which later declarations may use. Comments go first, so
     * that one running over the next lines (AL_ERROR_LEN's) does not end up in a value.
     *
     * A function the library does not export is left out, since FFI::cdef refuses a declaration
     * it cannot resolve: the block is written for cffi, which compiles what it declares, and a
     * declaration whose code lives elsewhere (the load generator's once were here) must not stop
     * the server from loading. A function php-ffi calls and the library lacks still fails, at
     * that call, as one line.
     *
     * @param callable(string): bool $exported whether the library has a function of that name
     */
    public static function declarations(string $header, callable $exported): string
    {
        $text = file_get_contents($header);
        if ($text === false || preg_match('~/\* cdef: begin \*/(.*?)/\* cdef: end \*/~s', $text, $m) !== 1) {
            throw new \RuntimeException("{$header}: no cdef block");
        }
        $block = preg_replace('~/\*.*?\*/|//[^\n]*~s', ' ', $m[1]);
        $lines = [];
        foreach (explode("\n", $block) as $line) {
            if (preg_match('/^\s*#\s*define\s+([A-Za-z_]\w*)\s+(.*?)\s*$/', $line, $d) === 1) {
                if (preg_match('/^[-+]?\s*(0[xX][0-9a-fA-F]+|\d+)$/', $d[2]) !== 1) {
                    throw new \RuntimeException("{$header}: #define {$d[1]} {$d[2]}: not an integer FFI can take");
                }
                $lines[] = "enum { {$d[1]} = {$d[2]} };";
            } elseif (preg_match('/^\s*#/', $line) === 1) {
                throw new \RuntimeException("{$header}: a preprocessor line in the cdef block: " . trim($line));
            } else {
                $lines[] = $line;
            }
        }
        // A callback's `const char *` would reach PHP as a string cut at its first NUL (FFI reads
        // it as a C string), never the `len` bytes the core passes with it: inside a function
        // pointer's parameters it is declared `const void *`, the same pointer to C.
        $text = preg_replace_callback(
            '/(\(\s*\*\s*\w+\s*\)\s*\()([^()]*)\)/',
            static fn (array $m): string => $m[1] . preg_replace('/\bconst\s+char\s*\*/', 'const void *', $m[2]) . ')',
            implode("\n", $lines),
        );
        $kept = [];
        foreach (self::statements($text) as $statement) {
            $function = self::functionName($statement);
            if ($function === null || $exported($function)) {
                $kept[] = $statement;
            }
        }
        return implode("\n", $kept);
    }

    /**
     * The top-level declarations, each with its `;`: split at the semicolons outside braces.
     *
     * @return list<string>
     */
    private static function statements(string $text): array
    {
        $statements = [];
        $depth = 0;
        $start = 0;
        for ($i = 0, $n = strlen($text); $i < $n; $i++) {
            $c = $text[$i];
            if ($c === '{') {
                $depth++;
            } elseif ($c === '}') {
                $depth--;
            } elseif ($c === ';' && $depth === 0) {
                $statements[] = trim(substr($text, $start, $i + 1 - $start));
                $start = $i + 1;
            }
        }
        if (trim(substr($text, $start)) !== '') {
            throw new \RuntimeException('the cdef block ends inside a declaration: ' . trim(substr($text, $start)));
        }
        return $statements;
    }

    /** The name a function prototype declares; null for a type, a typedef or a constant. */
    private static function functionName(string $statement): ?string
    {
        if (str_contains($statement, '{') || preg_match('/^typedef\b/', $statement) === 1) {
            return null;
        }
        return preg_match('/([A-Za-z_]\w*)\s*\(/', $statement, $m) === 1 ? $m[1] : null;
    }

    /**
     * Whether the library exports a symbol, asked of the dynamic linker as FFI::cdef will ask it.
     *
     * @return callable(string): bool
     * @throws \FFI\Exception when the library cannot be opened
     */
    private static function exportedBy(string $library): callable
    {
        $dl = Libc::ffi();
        $handle = $dl->dlopen($library, 2 /* RTLD_NOW */);
        if ($handle === null) {
            throw new \FFI\Exception(\FFI::string($dl->dlerror()));
        }
        // The handle stays open: FFI::cdef opens the same library again, which then costs nothing.
        return static fn (string $name): bool => $dl->dlsym($handle, $name) !== null;
    }
}
