<?php
// Output after exit: shutdown functions, destructors and open output buffers.
final class Noisy
{
    public function __destruct()
    {
        echo "destructor\n";
    }
}
$noisy = new Noisy();
register_shutdown_function(static function (): void {
    echo "shutdown function 1\n";
    register_shutdown_function(static fn () => print "nested shutdown function\n");
});
register_shutdown_function(static function (): void {
    fwrite(STDERR, "shutdown on stderr\n");
    exit(9); // an exit inside a shutdown function sets the code
});
ob_start();
echo "buffered before exit\n";
exit(4);
