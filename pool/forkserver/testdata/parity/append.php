<?php
echo "append ran\n";
