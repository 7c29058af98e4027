<?php
// The PHP port of acceptloop: `php php/acceptloop.php --service echo --model event --port 0`.
// Loads the classes of src/ (one class per file, named after it) and runs the server.
declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $prefix = 'AcceptLoop\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/src/' . substr($class, strlen($prefix)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

exit(AcceptLoop\Server::main(array_slice($argv, 1)));
