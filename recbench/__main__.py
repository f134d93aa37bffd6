from .cli import main

if __name__ == "__main__":  # not when a spawned worker process (`recbench tune --jobs N`) imports this module
    main()
