// Command goredisget does one GET with go-redis; footprint.sh measures
// its binary and its modules.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"
)

func main() {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	v, err := c.Get(context.Background(), "k").Result()
	fmt.Println(v, err)
	if err != nil && err != redis.Nil {
		os.Exit(1)
	}
}
