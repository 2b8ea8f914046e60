var b=process.memory().usage; var M=require("m"); print("JSV "+(process.memory().usage-b));
