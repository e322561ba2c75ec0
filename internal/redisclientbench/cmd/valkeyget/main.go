// Command valkeyget does one GET with valkey-go; footprint.sh measures
// its binary and its modules.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/valkey-io/valkey-go"
)

func main() {
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer c.Close()
	v, err := c.Do(context.Background(), c.B().Get().Key("k").Build()).ToString()
	fmt.Println(v, err)
	if err != nil && !valkey.IsValkeyNil(err) {
		os.Exit(1)
	}
}
