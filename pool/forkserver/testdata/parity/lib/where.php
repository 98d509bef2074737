<?php
echo "lib: ", __FILE__, " ", __DIR__, "\n";
