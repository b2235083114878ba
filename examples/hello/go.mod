module example.com/hello-ko

go 1.22
