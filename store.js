require("Storage").write("m", require("fs").readFileSync("/work/main/dist/mqtt.js"));
