from benchmarks.perf import main

main()
