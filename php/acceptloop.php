<?php
// The PHP port of acceptloop: `php php/acceptloop.php --service echo --model event --port 0`.
// Loads every class of src/ (one class per file, named after it), then runs the server.
declare(strict_types=1);

// Every class is loaded here, before the server opens a single descriptor, and the autoloader
// is gone before the server starts. Loaded on first use instead, a class whose first use fell
// while descriptors were exhausted (the first connection at the limit, a reset during an EMFILE
// pause) could not be read, and the server died of it. Loading needs a descriptor of its own;
// when even that fails, one line names the file and the reason and the exit code is 1, as for
// any start-up step. Os and Errno are not loaded yet, so this does by hand what
// Os::installErrorHandler, Errno::describeError and Server::fail do.
$loaded = (static function (): ?string {
    ini_set('display_errors', 'stderr');
    set_error_handler(static function (int $level, string $message, string $file, int $line): bool {
        throw new \ErrorException($message, 0, $level, $file, $line);
    });
    $src = __DIR__ . '/src';
    // During loading only: a class that extends another (EchoService extends Service) has its
    // parent loaded first, whatever order the directory lists them in.
    $autoload = static function (string $class) use ($src): void {
        $prefix = 'AcceptLoop\\';
        if (str_starts_with($class, $prefix)) {
            $file = $src . '/' . substr($class, strlen($prefix)) . '.php';
            if (is_file($file)) {
                require $file;
            }
        }
    };
    spl_autoload_register($autoload);
    try {
        foreach (scandir($src) as $entry) {
            if (str_ends_with($entry, '.php')) {
                class_exists('AcceptLoop\\' . substr($entry, 0, -strlen('.php')));
            }
        }
        return null;
    } catch (\ErrorException $e) {
        // `require(/x/src/Errno.php): Failed to open stream: Too many open files`: the warning
        // carries strerror's text only, so the errno's name is found by its text.
        if (preg_match('/^\w+\((.*)\): Failed to open \w+: (.*)$/sD', $e->getMessage(), $m) !== 1) {
            return "load {$src}: " . strtok($e->getMessage(), "\n");
        }
        foreach (get_defined_constants(true)['sockets'] as $constant => $value) {
            if (str_starts_with($constant, 'SOCKET_E') && socket_strerror($value) === $m[2]) {
                return "load {$m[1]}: {$m[2]} (" . substr($constant, strlen('SOCKET_')) . ')';
            }
        }
        return "load {$m[1]}: {$m[2]}";
    } catch (\Throwable $e) {
        return "load {$src}: " . get_class($e) . ': ' . strtok($e->getMessage(), "\n");
    } finally {
        spl_autoload_unregister($autoload);
        restore_error_handler();
    }
})();
if ($loaded !== null) {
    fwrite(STDERR, $loaded . "\n");
    exit(1);   // Protocol::EXIT_FAILURE, which may be the class that could not be loaded
}

exit(AcceptLoop\Server::main(array_slice($argv, 1)));
