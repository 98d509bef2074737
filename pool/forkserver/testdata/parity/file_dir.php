<?php
echo __FILE__, "\n", __DIR__, "\n", __LINE__, "\n";
// The test's own files among the included ones (a fork lists src/ForkServer.php and src/ForkCall.php first).
echo json_encode(array_values(array_map('basename', array_filter(get_included_files(), static fn ($f) => str_contains($f, '/parity/'))))), "\n";
require __DIR__ . '/lib/where.php';
