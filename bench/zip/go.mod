module sluice-bench-zip

go 1.19
